import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useRef } from "react";
import { polydev } from "../api/polydev";
import { imagesKey, useFollowedLog } from "../queries/images";
import { ErrorNotice } from "./error-notice";
import { StateBadge } from "./state-badge";

/**
 * A build's (or pull's) log, streamed while it runs, then the image's final state. A failed build's
 * error names the failing step, and the log above it holds that step's output.
 */
export function BuildLog({ name }: { name: string }) {
  const log = useFollowedLog(name);
  const client = useQueryClient();
  const end = useRef<HTMLPreElement>(null);
  // The image as it ends up; asked once the stream has closed (the build is then over).
  const image = useQuery({
    queryKey: ["images", "one", name, log.ended],
    queryFn: ({ signal }) => polydev.images.get(name, { signal }),
    enabled: log.ended,
  });
  // The build is over: the list should say so now, not at its next poll.
  useEffect(() => {
    if (log.ended) void client.invalidateQueries({ queryKey: [...imagesKey, "list"] });
  }, [log.ended, client]);
  useEffect(() => {
    const pre = end.current;
    if (pre && log.text) pre.scrollTop = pre.scrollHeight;
  }, [log.text]);
  const state = image.data?.state ?? "building";
  return (
    <section className="card" aria-labelledby="build-log-title" data-image={name}>
      <div className="card-head">
        <h2 id="build-log-title">
          Log of <span className="mono">{name}</span>
        </h2>
        <StateBadge state={state} />
      </div>
      <pre ref={end} className="console build-log" role="log" aria-label="Build log">
        {log.text || (log.ended ? "(no output)" : "Waiting for output…")}
      </pre>
      {log.error ? <ErrorNotice error={log.error} title="The log stream broke off" /> : null}
      {image.error ? <ErrorNotice error={image.error} title="Could not read the image" /> : null}
      {image.data?.state === "failed" ? (
        <div className="notice notice-error" role="alert">
          <strong>The build failed:</strong> {image.data.error ?? "see the log above"}
        </div>
      ) : null}
      {image.data?.state === "ready" ? (
        <p className="notice notice-good" role="status">
          <span className="mono">{name}</span> is ready: pick it when you create a sandbox.
        </p>
      ) : null}
    </section>
  );
}
