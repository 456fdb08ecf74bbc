import type { FormEvent } from "react";
import { useState } from "react";
import { ErrorNotice } from "../components/error-notice";
import { useSignIn } from "../queries/session";

/**
 * Name and password, an API key, or a token of the organisation's identity provider (an OIDC
 * ID or access token, pasted); the server answers with an HttpOnly session cookie.
 */
export function SignInPage() {
  const [mode, setMode] = useState<"password" | "apiKey" | "idToken">("password");
  const [idToken, setIdToken] = useState("");
  const [name, setName] = useState("");
  const [password, setPassword] = useState("");
  const [apiKey, setApiKey] = useState("");
  const signIn = useSignIn();

  const submit = (event: FormEvent): void => {
    event.preventDefault();
    signIn.mutate(
      mode === "password"
        ? { name: name.trim(), password }
        : mode === "apiKey"
          ? { apiKey: apiKey.trim() }
          : { idToken: idToken.trim() },
    );
  };

  return (
    <main className="center">
      <section className="card sign-in" aria-labelledby="sign-in-title">
        <div className="brand brand-large">
          <span className="brand-mark" aria-hidden="true" />
          Polydev
        </div>
        <h1 id="sign-in-title">Sign in</h1>
        <fieldset className="segmented">
          <legend className="visually-hidden">Sign in with</legend>
          <button
            type="button"
            aria-pressed={mode === "password"}
            onClick={() => setMode("password")}
            className="segment"
          >
            Name and password
          </button>
          <button
            type="button"
            aria-pressed={mode === "apiKey"}
            onClick={() => setMode("apiKey")}
            className="segment"
          >
            API key
          </button>
          <button
            type="button"
            aria-pressed={mode === "idToken"}
            onClick={() => setMode("idToken")}
            className="segment"
          >
            Identity token
          </button>
        </fieldset>
        <form onSubmit={submit} className="stack">
          {mode === "password" ? (
            <>
              <label className="field">
                <span>Name</span>
                <input
                  className="input"
                  name="username"
                  autoComplete="username"
                  value={name}
                  onChange={(e) => setName(e.target.value)}
                  required
                />
              </label>
              <label className="field">
                <span>Password</span>
                <input
                  className="input"
                  type="password"
                  name="password"
                  autoComplete="current-password"
                  value={password}
                  onChange={(e) => setPassword(e.target.value)}
                  required
                />
              </label>
            </>
          ) : mode === "idToken" ? (
            <label className="field">
              <span>Identity provider token</span>
              <textarea
                className="input mono"
                name="idToken"
                autoComplete="off"
                spellCheck={false}
                rows={4}
                placeholder="eyJ…"
                value={idToken}
                onChange={(e) => setIdToken(e.target.value)}
                required
              />
              <small className="muted">
                A JWT from an issuer this server trusts (Supabase, Keycloak, Auth0…), e.g. the access token
                your identity provider's CLI prints.
              </small>
            </label>
          ) : (
            <label className="field">
              <span>API key</span>
              <input
                className="input mono"
                type="password"
                name="apiKey"
                autoComplete="off"
                spellCheck={false}
                placeholder="pdk_…"
                value={apiKey}
                onChange={(e) => setApiKey(e.target.value)}
                required
              />
              <small className="muted">
                The admin's key is printed on the server's first start and kept in its data directory.
              </small>
            </label>
          )}
          {signIn.error ? <ErrorNotice error={signIn.error} title="Could not sign in" /> : null}
          <button type="submit" className="button button-primary" disabled={signIn.isPending}>
            {signIn.isPending ? "Signing in…" : "Sign in"}
          </button>
        </form>
      </section>
    </main>
  );
}
