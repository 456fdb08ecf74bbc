import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { sandboxPortsQuery, usePreviewLink } from "../queries/ports";
import { CopyButton } from "./copy-button";
import { ErrorNotice } from "./error-notice";

/**
 * The sandbox page's Ports tab: what listens in the sandbox, each with "Open preview". The link
 * opens on the server's separate preview origin (never this one: a sandbox's page must not run
 * with the dashboard's session), in a new tab without an opener.
 */
export function PortsPanel({ sandboxId }: { sandboxId: string }) {
  const ports = useQuery(sandboxPortsQuery(sandboxId));
  const link = usePreviewLink(sandboxId);
  const [shared, setShared] = useState<{ port: number; url: string; expiresAt: string } | undefined>();
  if (ports.error) return <ErrorNotice error={ports.error} title="Could not list the sandbox's ports" />;
  if (!ports.data) return <p className="muted">Loading…</p>;
  const open = async (port: number): Promise<void> => {
    // The tab is opened now, inside the click, or a popup blocker would stop it after the await.
    const tab = window.open("about:blank", "_blank");
    try {
      const { url } = await link.mutateAsync({ port, share: false });
      if (tab) {
        tab.opener = null;
        tab.location.href = url;
      } else window.location.assign(url);
    } catch {
      tab?.close();
    }
  };
  const share = async (port: number): Promise<void> => {
    const made = await link.mutateAsync({ port, share: true }).catch(() => undefined);
    if (made) setShared({ port, url: made.url, expiresAt: made.expiresAt });
  };
  return (
    <div className="stack">
      {link.error ? <ErrorNotice error={link.error} title="Could not make a preview link" /> : null}
      {ports.data.items.length === 0 ? (
        <p className="empty">
          Nothing listens in this sandbox yet. Start a server (for example{" "}
          <code>python3 -m http.server 8000</code>) and it shows up here.
        </p>
      ) : (
        <div className="table-wrap">
          <table className="table table-compact" aria-label="Listening ports">
            <thead>
              <tr>
                <th scope="col">Port</th>
                <th scope="col">Address</th>
                <th scope="col">Process</th>
                <th scope="col">Preview</th>
              </tr>
            </thead>
            <tbody>
              {ports.data.items.map((item) => (
                <tr key={item.port}>
                  <td>{item.port}</td>
                  <td>{item.address}</td>
                  <td>{item.process ? `${item.process.name} (${item.process.pid})` : "-"}</td>
                  <td>
                    <button
                      type="button"
                      className="button button-small"
                      disabled={link.isPending}
                      onClick={() => void open(item.port)}
                    >
                      Open preview
                    </button>{" "}
                    <button
                      type="button"
                      className="button button-small"
                      disabled={link.isPending}
                      onClick={() => void share(item.port)}
                    >
                      Share link
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {shared ? (
        <div className="card">
          <p>
            Anyone holding this link can open port {shared.port} until{" "}
            {new Date(shared.expiresAt).toLocaleString()}:
          </p>
          <p>
            <code className="secret">{shared.url}</code>
          </p>
          <CopyButton text={shared.url} label="Copy share link" />
        </div>
      ) : null}
      <p className="muted small">
        Previews open on a separate origin, entered with a short-lived signed link; the dashboard's sign-in
        never reaches them.
      </p>
    </div>
  );
}
