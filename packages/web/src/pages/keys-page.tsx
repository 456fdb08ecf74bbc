import { useQuery } from "@tanstack/react-query";
import type { FormEvent } from "react";
import { useState } from "react";
import { ConfirmButton } from "../components/confirm-button";
import { CopyButton } from "../components/copy-button";
import { ErrorNotice } from "../components/error-notice";
import { formatTime } from "../components/format";
import { apiKeyListQuery, useCreateApiKey, useRevokeApiKey } from "../queries/keys";

const DAY_MS = 86_400_000;
const EXPIRY_CHOICES = [
  { label: "Never", days: 0 },
  { label: "7 days", days: 7 },
  { label: "30 days", days: 30 },
  { label: "90 days", days: 90 },
  { label: "1 year", days: 365 },
] as const;

export function KeysPage() {
  const list = useQuery(apiKeyListQuery());
  const revoke = useRevokeApiKey();
  const now = Date.now();
  return (
    <>
      <div className="page-head">
        <h1>API keys</h1>
        <p className="muted">
          Keys let the CLI, the SDK and scripts act as you. A key's secret is shown once, when it is created;
          revoke a key you no longer use or may have leaked.
        </p>
      </div>
      <CreateKey />
      <section className="card" aria-labelledby="keys-title">
        <h2 id="keys-title">Your keys</h2>
        {list.error ? (
          <ErrorNotice
            error={list.error}
            title="Could not load your keys"
            onRetry={() => void list.refetch()}
          />
        ) : null}
        {revoke.error ? <ErrorNotice error={revoke.error} title="Could not revoke the key" /> : null}
        {list.data && list.data.items.length === 0 ? <p className="empty">You have no API keys.</p> : null}
        {list.data && list.data.items.length > 0 ? (
          <div className="table-wrap">
            <table className="table" aria-label="API keys">
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Key</th>
                  <th scope="col">Created</th>
                  <th scope="col">Expires</th>
                  <th scope="col">Last used</th>
                  <th scope="col">
                    <span className="visually-hidden">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {list.data.items.map((key) => {
                  const expired = key.expiresAt !== null && Date.parse(key.expiresAt) <= now;
                  return (
                    <tr key={key.id} data-key-id={key.id}>
                      <td>{key.name}</td>
                      <td>
                        <code>{key.prefix}…</code>
                      </td>
                      <td className="small">{formatTime(key.createdAt)}</td>
                      <td className="small">
                        {key.expiresAt === null ? "never" : formatTime(key.expiresAt)}
                        {expired ? <span className="badge badge-bad"> expired</span> : null}
                      </td>
                      <td className="small">{key.lastUsedAt ? formatTime(key.lastUsedAt) : "never"}</td>
                      <td>
                        <ConfirmButton
                          label="Revoke"
                          title={`Revoke the key "${key.name}"?`}
                          confirmLabel="Revoke"
                          disabled={revoke.isPending}
                          onConfirm={() => revoke.mutate(key.id)}
                        >
                          <p>
                            Anything still using <code>{key.prefix}…</code> gets 401 from now on. This cannot
                            be undone.
                          </p>
                        </ConfirmButton>
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
        ) : null}
      </section>
    </>
  );
}

function CreateKey() {
  const create = useCreateApiKey();
  const [name, setName] = useState("");
  const [days, setDays] = useState(0);
  const submit = (event: FormEvent): void => {
    event.preventDefault();
    const expiresAt = days > 0 ? new Date(Date.now() + days * DAY_MS).toISOString() : undefined;
    create.mutate(
      { name: name.trim(), ...(expiresAt ? { expiresAt } : {}) },
      { onSuccess: () => setName("") },
    );
  };
  return (
    <section className="card" aria-labelledby="new-key-title">
      <h2 id="new-key-title">New key</h2>
      <form className="create-form" onSubmit={submit}>
        <label className="field">
          <span>Name</span>
          <input
            className="input"
            value={name}
            onChange={(e) => setName(e.target.value)}
            placeholder="laptop, ci…"
            maxLength={100}
            required
          />
        </label>
        <label className="field">
          <span>Expires</span>
          <select className="input" value={days} onChange={(e) => setDays(Number(e.target.value))}>
            {EXPIRY_CHOICES.map((choice) => (
              <option key={choice.days} value={choice.days}>
                {choice.label}
              </option>
            ))}
          </select>
        </label>
        <div className="field field-submit">
          <button type="submit" className="button button-primary" disabled={create.isPending}>
            {create.isPending ? "Creating…" : "Create key"}
          </button>
        </div>
      </form>
      {create.error ? <ErrorNotice error={create.error} title="Could not create the key" /> : null}
      {create.data ? (
        <div className="notice notice-good" role="status">
          <strong>{create.data.key.name}</strong> was created. Copy its secret now; it is shown only this
          once:
          <div className="secret-row">
            <code className="secret" data-testid="new-key-secret">
              {create.data.apiKey}
            </code>
            <CopyButton text={create.data.apiKey} />
          </div>
        </div>
      ) : null}
    </section>
  );
}
