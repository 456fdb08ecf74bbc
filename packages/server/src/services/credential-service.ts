/**
 * Provider credentials: sealed by the vault before they are stored, opened only in memory for
 * the gateway. Nothing here returns or logs a secret.
 */
import type { CredentialRecord, Store } from "@polydev/core";
import { PolydevError } from "@polydev/core";
import { GATEWAY_PROVIDERS, type GatewayProvider, type UpstreamCredential } from "@polydev/gateway";
import type { EnvelopeVault } from "@polydev/vault";
import { request } from "undici";
import { newId } from "./api-keys.js";
import { accessTokenFrom } from "./login-flows.js";
import type { OAuthClient } from "./oauth-refresh.js";
import { DEFAULT_OAUTH_CLIENTS, refreshCredentialFile, tokensOf } from "./oauth-refresh.js";

/** Where a cheap authenticated GET tells whether a key works, per provider. */
const VALIDATION: Record<GatewayProvider, { path: string; header: (key: string) => Record<string, string> }> =
  {
    anthropic: {
      path: "/v1/models",
      header: (key) => ({ "x-api-key": key, "anthropic-version": "2023-06-01" }),
    },
    openai: { path: "/v1/models", header: (key) => ({ authorization: `Bearer ${key}` }) },
    gemini: { path: "/v1beta/models", header: (key) => ({ "x-goog-api-key": key }) },
  };

export interface CredentialView {
  provider: string;
  kind: string;
  createdAt: string;
  updatedAt: string;
  lastUsedAt: string | null;
  lastValidatedAt: string | null;
  valid: boolean | null;
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

export function presentCredential(c: CredentialRecord): CredentialView {
  return {
    provider: c.provider,
    kind: c.kind,
    createdAt: new Date(c.createdAt).toISOString(),
    updatedAt: new Date(c.updatedAt).toISOString(),
    lastUsedAt: iso(c.lastUsedAt),
    lastValidatedAt: iso(c.lastValidatedAt),
    valid: c.valid,
  };
}

export class CredentialService {
  constructor(
    private readonly store: Store,
    private readonly vault: EnvelopeVault,
    private readonly upstreams: Record<GatewayProvider, string>,
    private readonly now: () => number,
    private readonly oauthClients: Partial<Record<GatewayProvider, OAuthClient>> = DEFAULT_OAUTH_CLIENTS,
  ) {}

  private readonly refreshing = new Map<string, Promise<string>>();

  async putApiKey(userId: string, provider: GatewayProvider, apiKey: string): Promise<CredentialRecord> {
    const sealed = await this.sealCurrent(apiKey, userId, provider);
    return this.store.credentials.upsert({
      id: newId("cred"),
      userId,
      provider,
      kind: "api_key",
      sealed,
      keyId: this.vault.keyIdOf(sealed),
      metadata: {},
      createdAt: this.now(),
    });
  }

  /** A subscription login's credential file, as the CLI wrote it (checked to hold a token). */
  async putOAuth(userId: string, provider: GatewayProvider, fileText: string): Promise<CredentialRecord> {
    const { expiresAt } = accessTokenFrom(provider, fileText);
    const sealed = await this.sealCurrent(fileText, userId, provider);
    return this.store.credentials.upsert({
      id: newId("cred"),
      userId,
      provider,
      kind: "oauth",
      sealed,
      keyId: this.vault.keyIdOf(sealed),
      metadata: expiresAt === undefined ? {} : { expiresAt: new Date(expiresAt).toISOString() },
      createdAt: this.now(),
    });
  }

  /**
   * Seals under the master key that is current in the key file right now: after a
   * `polydev keys rotate` in another process, a record sealed with the old key could be stranded
   * once that key is retired.
   */
  private async sealCurrent(plaintext: string, ownerId: string, provider: string): Promise<string> {
    await this.vault.refresh();
    return this.vault.seal(plaintext, { ownerId, provider });
  }

  /** Provider credentials; git hosts' tokens are listed by /v1/git-credentials instead. */
  async list(userId: string): Promise<CredentialRecord[]> {
    return (await this.store.credentials.listForUser(userId)).filter((c) => c.kind !== "git_token");
  }

  async remove(userId: string, provider: string): Promise<void> {
    if (!(await this.store.credentials.delete(userId, provider))) {
      throw new PolydevError("not_found", `no ${provider} credential is stored`);
    }
  }

  /** The plaintext, for the gateway only. */
  async credentialFor(userId: string, provider: GatewayProvider): Promise<UpstreamCredential | undefined> {
    const record = await this.store.credentials.get(userId, provider);
    // A git host's token (git-credentials.ts) is never a provider's credential.
    if (!record || record.kind === "git_token") return undefined;
    if (!this.vault.hasKey(record.keyId)) await this.vault.refresh();
    let plaintext = this.vault.open(record.sealed, { ownerId: userId, provider });
    if (record.kind === "oauth") plaintext = await this.freshOAuth(record, plaintext);
    void this.store.credentials.markUsed(record.id, this.now()).catch(() => undefined);
    // A login's credential is the CLI's whole file; the gateway needs its access token.
    const secret = record.kind === "oauth" ? accessTokenFrom(provider, plaintext).token : plaintext;
    return { kind: record.kind, secret };
  }

  /**
   * An OAuth credential whose access token expires within a minute is refreshed first, once
   * even when many requests ask at the same moment, and stored again (sealed).
   */
  private async freshOAuth(record: CredentialRecord, plaintext: string): Promise<string> {
    const provider = record.provider as GatewayProvider;
    const { expiresAt } = tokensOf(provider, JSON.parse(plaintext) as Record<string, unknown>);
    if (expiresAt === undefined || expiresAt > this.now() + 60_000) return plaintext;
    let pending = this.refreshing.get(record.id);
    if (!pending) {
      pending = (async () => {
        let refreshed: string;
        try {
          refreshed = await refreshCredentialFile(
            provider,
            plaintext,
            this.oauthClients[provider],
            this.now(),
          );
        } catch (error) {
          throw new PolydevError("unauthorized", error instanceof Error ? error.message : String(error));
        }
        const sealed = await this.sealCurrent(refreshed, record.userId, provider);
        await this.store.credentials.replaceSealed(
          record.id,
          record.sealed,
          sealed,
          this.vault.keyIdOf(sealed),
        );
        return refreshed;
      })().finally(() => this.refreshing.delete(record.id));
      this.refreshing.set(record.id, pending);
    }
    return pending;
  }

  /** Asks the provider whether the key works; 401/403 mean invalid, anything else is an outage. */
  async validate(userId: string, provider: GatewayProvider): Promise<CredentialRecord> {
    const record = await this.store.credentials.get(userId, provider);
    if (!record) throw new PolydevError("not_found", `no ${provider} credential is stored`);
    const credential = await this.credentialFor(userId, provider);
    if (!credential) throw new PolydevError("not_found", `no ${provider} credential is stored`);
    const check = VALIDATION[provider];
    const headers =
      credential.kind === "oauth"
        ? { authorization: `Bearer ${credential.secret}` }
        : check.header(credential.secret);
    let status: number;
    try {
      const response = await request(new URL(check.path, this.upstreams[provider]), {
        method: "GET",
        headers,
        headersTimeout: 15_000,
        bodyTimeout: 15_000,
      });
      await response.body.dump();
      status = response.statusCode;
    } catch {
      throw new PolydevError(
        "sandbox_failed",
        `${provider} could not be reached to validate the credential; try again`,
      );
    }
    if (status !== 401 && status !== 403 && status >= 300) {
      throw new PolydevError(
        "sandbox_failed",
        `${provider} answered ${status} while validating; try again later`,
      );
    }
    await this.store.credentials.markValidated(record.id, this.now(), status < 300);
    const updated = await this.store.credentials.get(userId, provider);
    if (!updated) throw new PolydevError("not_found", `no ${provider} credential is stored`);
    return updated;
  }

  /**
   * Checks every stored credential with its provider (one cheap GET each; the background job's
   * work). A failing check marks the credential invalid, never deletes it; an outage or an
   * unreadable record is reported and leaves it as it was. Reports per record.
   */
  async validateAll(signal: AbortSignal): Promise<{ id: string; valid?: boolean; error?: string }[]> {
    const results: { id: string; valid?: boolean; error?: string }[] = [];
    for (const record of await this.store.credentials.listAll()) {
      if (signal.aborted) break;
      const provider = GATEWAY_PROVIDERS.find((p) => p === record.provider);
      if (!provider) continue;
      try {
        const updated = await this.validate(record.userId, provider);
        results.push({ id: record.id, valid: updated.valid ?? undefined });
      } catch (error) {
        results.push({ id: record.id, error: error instanceof Error ? error.message : String(error) });
      }
    }
    return results;
  }

  /**
   * Re-wraps every credential under the current master key (after `polydev keys rotate`).
   * Reports per record; a record changed meanwhile is left for the next pass.
   */
  async rewrapAll(): Promise<{ id: string; ok: boolean; error?: string }[]> {
    await this.vault.refresh();
    const results: { id: string; ok: boolean; error?: string }[] = [];
    for (const record of await this.store.credentials.listAll()) {
      if (record.keyId === this.vault.currentKeyId()) continue;
      try {
        const sealed = this.vault.rewrap(record.sealed, {
          ownerId: record.userId,
          provider: record.provider,
        });
        const ok = await this.store.credentials.replaceSealed(
          record.id,
          record.sealed,
          sealed,
          this.vault.keyIdOf(sealed),
        );
        results.push(
          ok ? { id: record.id, ok } : { id: record.id, ok, error: "changed meanwhile; run again" },
        );
      } catch (error) {
        results.push({
          id: record.id,
          ok: false,
          error: error instanceof Error ? error.message : String(error),
        });
      }
    }
    return results;
  }
}
