import type { EgressAuditEvent, SandboxNetwork } from "@polydev/sdk";
import { useQuery } from "@tanstack/react-query";
import type { FormEvent } from "react";
import { useState } from "react";
import type { Sandbox } from "../api/types";
import { sandboxNetworkQuery, useEgressAudit, useUpdateNetwork } from "../queries/network";
import type { EgressRulesDraft } from "./egress-rules-fields";
import { draftFromPolicy, EgressRulesFields, parseEntries } from "./egress-rules-fields";
import { ErrorNotice } from "./error-notice";
import { formatBytes, formatTime, networkLabel } from "./format";

/** The sandbox page's Network tab: an allow-list sandbox's policy, editable, and its audit log. */
export function NetworkPanel({ sandbox }: { sandbox: Sandbox }) {
  if (sandbox.network !== "allowlist") {
    return (
      <p className="empty">
        This sandbox's network is <strong>{networkLabel(sandbox.network)}</strong>; the mode is fixed when a
        sandbox is created. Create one with the network "Allow-list" to choose the destinations it may reach.
      </p>
    );
  }
  return (
    <div className="stack">
      <PolicySection sandboxId={sandbox.id} />
      <AuditSection sandboxId={sandbox.id} />
    </div>
  );
}

function PolicySection({ sandboxId }: { sandboxId: string }) {
  const policy = useQuery(sandboxNetworkQuery(sandboxId));
  // Kept here, not in the form: a save gives the form a new key (a fresh draft), and the note
  // that it was saved must outlive that.
  const [saved, setSaved] = useState(false);
  if (policy.error) return <ErrorNotice error={policy.error} title="Could not load the network policy" />;
  if (!policy.data) return <p className="muted">Loading…</p>;
  // A saved policy starts a fresh draft from what the server answered.
  return (
    <PolicyForm
      key={JSON.stringify(policy.data)}
      sandboxId={sandboxId}
      policy={policy.data}
      saved={saved}
      setSaved={setSaved}
    />
  );
}

function PolicyForm({
  sandboxId,
  policy,
  saved,
  setSaved,
}: {
  sandboxId: string;
  policy: SandboxNetwork;
  saved: boolean;
  setSaved: (saved: boolean) => void;
}) {
  const update = useUpdateNetwork(sandboxId);
  const [draft, setDraft] = useState<EgressRulesDraft>(() => draftFromPolicy(policy));
  const change = (next: EgressRulesDraft): void => {
    setDraft(next);
    setSaved(false);
  };
  const submit = (event: FormEvent): void => {
    event.preventDefault();
    // Not mutate's own onSuccess: the answer replaces the form (a new key), and React Query does
    // not call back into a component that has gone; the promise settles regardless.
    update
      .mutateAsync({
        allow: parseEntries(draft.allow),
        deny: parseEntries(draft.deny),
        presets: draft.presets,
      })
      .then(
        () => setSaved(true),
        () => undefined, // shown by update.error
      );
  };
  const list = (entries: string[]) =>
    entries.length === 0 ? (
      <p className="small muted">none</p>
    ) : (
      <ul className="entry-list mono">
        {entries.map((entry) => (
          <li key={entry}>{entry}</li>
        ))}
      </ul>
    );
  return (
    <section aria-labelledby="policy-title">
      <h3 id="policy-title">Egress policy</h3>
      <form className="stack" onSubmit={submit} aria-label="Egress policy">
        <EgressRulesFields value={draft} onChange={change} idPrefix="policy" />
        <div className="actions">
          <button type="submit" className="button button-primary" disabled={update.isPending}>
            {update.isPending ? "Saving…" : "Save policy"}
          </button>
          {saved ? (
            <span className="small good" role="status">
              Saved. The next connection follows it; nothing restarted.
            </span>
          ) : null}
        </div>
      </form>
      {update.error ? <ErrorNotice error={update.error} title="Could not save the policy" /> : null}
      <div className="policy-lists" data-testid="effective-policy">
        <div>
          <h4>Effective allow (own and presets')</h4>
          {list(policy.effective.allow)}
        </div>
        <div>
          <h4>Effective deny</h4>
          {list(policy.effective.deny)}
        </div>
      </div>
    </section>
  );
}

const STREAM_TEXT = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  failed: "Not live (reload to retry)",
} as const;

function AuditSection({ sandboxId }: { sandboxId: string }) {
  const { events, stream, error } = useEgressAudit(sandboxId);
  return (
    <section aria-labelledby="audit-title">
      <div className="card-head">
        <h3 id="audit-title">Connections</h3>
        <span
          className={`small ${stream === "live" ? "good" : stream === "failed" ? "bad" : "muted"}`}
          role="status"
          data-testid="audit-stream"
        >
          {STREAM_TEXT[stream]}
        </span>
      </div>
      {error ? <ErrorNotice error={error} title="Could not load the audit log" /> : null}
      <div className="table-wrap">
        <table className="table table-compact" aria-label="Egress audit log">
          <thead>
            <tr>
              <th scope="col">Time</th>
              <th scope="col">Decision</th>
              <th scope="col">Reason</th>
              <th scope="col">Destination</th>
              <th scope="col" className="hide-narrow">
                Address
              </th>
              <th scope="col" className="hide-narrow num">
                Out / in
              </th>
            </tr>
          </thead>
          <tbody>
            {events.length === 0 ? (
              <tr>
                <td colSpan={6} className="muted">
                  No connections yet. New ones appear here as the sandbox makes them.
                </td>
              </tr>
            ) : null}
            {events.map((event) => (
              <AuditRow key={event.id} event={event} />
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}

function AuditRow({ event }: { event: EgressAuditEvent }) {
  const denied = event.decision === "denied";
  const address = event.address.includes(":")
    ? `[${event.address}]:${event.port}`
    : `${event.address}:${event.port}`;
  return (
    <tr
      className={denied ? "audit-row-denied" : undefined}
      data-decision={event.decision}
      data-host={event.host ?? ""}
    >
      <td className="nowrap small">{formatTime(event.at)}</td>
      <td>
        <span className={`badge ${denied ? "badge-bad" : "badge-good"}`}>{event.decision}</span>
      </td>
      <td className="small mono">{event.reason}</td>
      <td className="wrap">
        <span className="mono">{event.host ?? event.address}</span>
        <span className="tag">{event.kind}</span>
      </td>
      <td className="hide-narrow small mono">{address}</td>
      <td className="hide-narrow small num nowrap">
        {formatBytes(event.bytesOut)} / {formatBytes(event.bytesIn)}
      </td>
    </tr>
  );
}
