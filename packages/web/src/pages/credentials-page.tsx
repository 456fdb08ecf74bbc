import { useQuery } from "@tanstack/react-query";
import type { FormEvent } from "react";
import { useId, useState } from "react";
import type { Credential, LoginProvider, Provider } from "../api/types";
import { FINAL_LOGIN_STATES, LOGIN_PROVIDERS, PROVIDERS } from "../api/types";
import { ConfirmButton } from "../components/confirm-button";
import { CopyButton } from "../components/copy-button";
import { ErrorNotice } from "../components/error-notice";
import { formatTime } from "../components/format";
import { StateBadge } from "../components/state-badge";
import {
  credentialListQuery,
  loginQuery,
  useCancelLogin,
  useLoginEvents,
  usePutApiKey,
  useRemoveCredential,
  useStartLogin,
  useSubmitLoginCode,
  useValidateCredential,
} from "../queries/credentials";

const NAMES: Record<Provider, string> = { anthropic: "Anthropic", openai: "OpenAI", gemini: "Google Gemini" };
const AGENT_OF: Record<Provider, string> = {
  anthropic: "Claude Code",
  openai: "Codex",
  gemini: "Gemini CLI",
};
const KIND_LABELS: Record<string, string> = { api_key: "API key", oauth: "subscription login" };
const LOGIN_CLIS: Record<LoginProvider, string> = {
  claude: "Claude Code",
  codex: "Codex",
  gemini: "Gemini CLI",
};

export function CredentialsPage() {
  const list = useQuery(credentialListQuery());
  const byProvider = new Map((list.data?.items ?? []).map((c) => [c.provider, c]));
  return (
    <>
      <div className="page-head">
        <h1>Credentials</h1>
        <p className="muted">
          Provider keys are stored encrypted and never shown again. Agents in your sandboxes reach providers
          through Polydev's gateway, which adds your key on the way out.
        </p>
      </div>
      {list.error ? (
        <ErrorNotice
          error={list.error}
          title="Could not load credentials"
          onRetry={() => void list.refetch()}
        />
      ) : null}
      <div className="grid-3">
        {PROVIDERS.map((provider) => (
          <ProviderCard
            key={provider}
            provider={provider}
            credential={byProvider.get(provider)}
            loading={list.isPending}
          />
        ))}
      </div>
      <LoginSection />
    </>
  );
}

function Validity({ credential }: { credential: Credential }) {
  if (credential.valid === true) return <span className="badge badge-good">valid</span>;
  if (credential.valid === false) return <span className="badge badge-bad">rejected</span>;
  return <span className="badge badge-calm">not checked</span>;
}

function ProviderCard({
  provider,
  credential,
  loading,
}: {
  provider: Provider;
  credential: Credential | undefined;
  loading: boolean;
}) {
  const put = usePutApiKey();
  const remove = useRemoveCredential();
  const validate = useValidateCredential();
  const [apiKey, setApiKey] = useState("");
  const inputId = useId();
  const submit = (event: FormEvent): void => {
    event.preventDefault();
    put.mutate({ provider, apiKey: apiKey.trim() }, { onSuccess: () => setApiKey("") });
  };
  return (
    <section className="card" aria-labelledby={`${inputId}-title`} data-provider={provider}>
      <div className="card-head">
        <h2 id={`${inputId}-title`}>{NAMES[provider]}</h2>
        {credential ? (
          <Validity credential={credential} />
        ) : loading ? null : (
          <span className="badge badge-calm">none</span>
        )}
      </div>
      {credential ? (
        <dl className="facts">
          <dt>Kind</dt>
          <dd>{KIND_LABELS[credential.kind] ?? credential.kind}</dd>
          <dt>Updated</dt>
          <dd>{formatTime(credential.updatedAt)}</dd>
          <dt>Last checked</dt>
          <dd>{credential.lastValidatedAt ? formatTime(credential.lastValidatedAt) : "never"}</dd>
          <dt>Last used</dt>
          <dd>{credential.lastUsedAt ? formatTime(credential.lastUsedAt) : "never"}</dd>
        </dl>
      ) : (
        <p className="muted small">
          No credential: {AGENT_OF[provider]} and the built-in agent cannot use {NAMES[provider]}.
        </p>
      )}
      {credential ? (
        <div className="actions">
          <button
            type="button"
            className="button button-small"
            onClick={() => validate.mutate(provider)}
            disabled={validate.isPending}
          >
            {validate.isPending ? "Checking…" : "Check validity"}
          </button>
          <ConfirmButton
            label="Remove"
            title={`Remove the ${NAMES[provider]} credential?`}
            confirmLabel="Remove"
            onConfirm={() => remove.mutate(provider)}
          >
            Agents will no longer reach {NAMES[provider]} with it.
          </ConfirmButton>
        </div>
      ) : null}
      <form onSubmit={submit} className="stack">
        <label className="field" htmlFor={inputId}>
          <span>{credential ? "Replace with a new API key" : "Add an API key"}</span>
        </label>
        <div className="inline-form">
          <input
            id={inputId}
            className="input mono"
            type="password"
            autoComplete="off"
            spellCheck={false}
            value={apiKey}
            onChange={(e) => setApiKey(e.target.value)}
            placeholder="paste the key"
          />
          <button
            type="submit"
            className="button button-primary button-small"
            disabled={put.isPending || apiKey.trim() === ""}
          >
            {put.isPending ? "Saving…" : "Save"}
          </button>
        </div>
      </form>
      {put.error ? <ErrorNotice error={put.error} title="Could not save the key" /> : null}
      {validate.error ? <ErrorNotice error={validate.error} title="Could not check the key" /> : null}
      {remove.error ? <ErrorNotice error={remove.error} title="Could not remove it" /> : null}
    </section>
  );
}

/** A provider's own CLI login, run inside a sandbox; the user finishes it in their own browser. */
function LoginSection() {
  const start = useStartLogin();
  const [loginId, setLoginId] = useState<string | undefined>();
  return (
    <section className="card" aria-labelledby="login-title">
      <h2 id="login-title">Sign in with a subscription</h2>
      <p className="muted small">
        Runs the provider's own CLI login in a fresh sandbox. Open the link it gives you, sign in there, and
        paste the code back here.
      </p>
      <div className="actions">
        {LOGIN_PROVIDERS.map((provider) => (
          <button
            key={provider}
            type="button"
            className="button"
            disabled={start.isPending}
            onClick={() => start.mutate(provider, { onSuccess: (login) => setLoginId(login.id) })}
          >
            Sign in with {LOGIN_CLIS[provider]}
          </button>
        ))}
      </div>
      {start.isPending ? (
        <p role="status" className="muted">
          <span className="spinner" aria-hidden="true" /> Starting the login in a sandbox and waiting for its
          sign-in link…
        </p>
      ) : null}
      {start.error ? <ErrorNotice error={start.error} title="Could not start the login" /> : null}
      {loginId ? <LoginPanel id={loginId} onDismiss={() => setLoginId(undefined)} /> : null}
    </section>
  );
}

function LoginPanel({ id, onDismiss }: { id: string; onDismiss: () => void }) {
  const login = useQuery(loginQuery(id));
  useLoginEvents(id);
  const submit = useSubmitLoginCode();
  const cancel = useCancelLogin();
  const [value, setValue] = useState("");
  const inputId = useId();
  if (!login.data)
    return login.error ? <ErrorNotice error={login.error} /> : <p className="muted">Loading…</p>;
  const view = login.data;
  const final = FINAL_LOGIN_STATES.includes(view.state);
  return (
    <div className="login-panel" data-login-state={view.state}>
      <div className="card-head">
        <h3>
          {LOGIN_CLIS[view.provider]} login <StateBadge state={view.state} />
        </h3>
        {final ? (
          <button type="button" className="button button-small" onClick={onDismiss}>
            Dismiss
          </button>
        ) : (
          <button
            type="button"
            className="button button-small button-danger"
            onClick={() => cancel.mutate(id)}
            disabled={cancel.isPending}
          >
            Cancel login
          </button>
        )}
      </div>
      {view.reason ? <p className={view.state === "completed" ? "" : "bad"}>{view.reason}</p> : null}
      {view.state === "completed" ? <p>Signed in. The credential is stored and shown above.</p> : null}
      {view.url && !final ? (
        <ol className="steps">
          <li>
            <p>Sign in on {hostOf(view.url)}:</p>
            {/* The URL itself is hundreds of characters: a button on a phone, the text on request. */}
            <div className="actions">
              <a href={view.url} target="_blank" rel="noopener noreferrer" className="button button-primary">
                Open sign-in page
              </a>
              <CopyButton text={view.url} label="Copy link" />
            </div>
            <details className="small">
              <summary>Show the link</summary>
              <p className="break mono">{view.url}</p>
            </details>
          </li>
          {view.userCode ? (
            <li>
              Enter this code there: <code className="code-big">{view.userCode}</code>
            </li>
          ) : null}
          <li>
            <form
              className="stack"
              onSubmit={(event) => {
                event.preventDefault();
                submit.mutate({ id, finish: view.finish, value: value.trim() });
              }}
            >
              <label htmlFor={inputId}>
                {view.finish === "callback"
                  ? "Paste the address your browser ended on (it starts with http://localhost)"
                  : "Paste the code the provider showed you"}
              </label>
              <div className="inline-form">
                <input
                  id={inputId}
                  className="input mono"
                  autoComplete="off"
                  spellCheck={false}
                  value={value}
                  onChange={(e) => setValue(e.target.value)}
                />
                <button
                  type="submit"
                  className="button button-primary"
                  disabled={submit.isPending || value.trim() === ""}
                >
                  {submit.isPending ? "Finishing…" : "Finish login"}
                </button>
              </div>
            </form>
          </li>
        </ol>
      ) : null}
      {submit.error ? <ErrorNotice error={submit.error} title="The code was not accepted" /> : null}
      {cancel.error ? <ErrorNotice error={cancel.error} title="Could not cancel" /> : null}
    </div>
  );
}

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return "the provider's site";
  }
}
