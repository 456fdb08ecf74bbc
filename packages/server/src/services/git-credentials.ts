/**
 * Git hosts' tokens in the vault: one per user and host, stored as the credential
 * `git:<host>` (kind `git_token`) beside the provider keys, sealed the same way. The token is
 * opened only in this process, for the git relay (clone, push) and the forge's pull-request API;
 * it never enters a sandbox. The non-secret parts (user name, forge, API base) sit in metadata.
 */
import type { CredentialRecord, Store } from "@polydev/core";
import { PolydevError } from "@polydev/core";
import type { EnvelopeVault } from "@polydev/vault";
import { newId } from "./api-keys.js";

export const GIT_CREDENTIAL_PREFIX = "git:";
export const FORGES = ["github", "gitlab"] as const;
export type Forge = (typeof FORGES)[number];

export interface GitCredentialInput {
  token: string;
  /** The user name sent with the token over HTTP; forges accept any for a token. */
  username?: string | undefined;
  /** Which pull-request API the host speaks; default: by host name (github.com, gitlab.com). */
  forge?: Forge | undefined;
  /** The forge's REST API base (GitHub Enterprise, self-hosted GitLab); default from the forge and host. */
  apiUrl?: string | undefined;
}

export interface GitCredential {
  host: string;
  username: string;
  token: string;
  forge: Forge | null;
  apiUrl: string | null;
}

export interface GitCredentialView {
  host: string;
  username: string;
  forge: string | null;
  apiUrl: string | null;
  createdAt: string;
  updatedAt: string;
  lastUsedAt: string | null;
}

/** What a token-only HTTP login is sent with when no user name is given (GitHub and GitLab accept it). */
const DEFAULT_USERNAME = "oauth2";

function forgeFromHost(host: string): Forge | null {
  const name = host.split(":")[0] ?? "";
  if (name === "github.com") return "github";
  if (name === "gitlab.com") return "gitlab";
  return null;
}

export function presentGitCredential(record: CredentialRecord): GitCredentialView {
  return {
    host: record.provider.slice(GIT_CREDENTIAL_PREFIX.length),
    username: record.metadata.username ?? DEFAULT_USERNAME,
    forge: record.metadata.forge ?? null,
    apiUrl: record.metadata.apiUrl ?? null,
    createdAt: new Date(record.createdAt).toISOString(),
    updatedAt: new Date(record.updatedAt).toISOString(),
    lastUsedAt: record.lastUsedAt === null ? null : new Date(record.lastUsedAt).toISOString(),
  };
}

export class GitCredentials {
  constructor(
    private readonly store: Store,
    private readonly vault: EnvelopeVault,
    private readonly now: () => number,
  ) {}

  async put(userId: string, host: string, input: GitCredentialInput): Promise<CredentialRecord> {
    const provider = `${GIT_CREDENTIAL_PREFIX}${host}`;
    await this.vault.refresh();
    const sealed = this.vault.seal(input.token, { ownerId: userId, provider });
    const forge = input.forge ?? forgeFromHost(host);
    const metadata: Record<string, string> = { username: input.username ?? DEFAULT_USERNAME };
    if (forge) metadata.forge = forge;
    if (input.apiUrl) metadata.apiUrl = input.apiUrl;
    return this.store.credentials.upsert({
      id: newId("cred"),
      userId,
      provider,
      kind: "git_token",
      sealed,
      keyId: this.vault.keyIdOf(sealed),
      metadata,
      createdAt: this.now(),
    });
  }

  async list(userId: string): Promise<CredentialRecord[]> {
    return (await this.store.credentials.listForUser(userId)).filter((c) => c.kind === "git_token");
  }

  async remove(userId: string, host: string): Promise<void> {
    if (!(await this.store.credentials.delete(userId, `${GIT_CREDENTIAL_PREFIX}${host}`)))
      throw new PolydevError("not_found", `no git credential is stored for ${host}`);
  }

  /** The token for a host, opened in memory; undefined when the user stored none. */
  async forHost(userId: string, host: string): Promise<GitCredential | undefined> {
    const provider = `${GIT_CREDENTIAL_PREFIX}${host}`;
    const record = await this.store.credentials.get(userId, provider);
    if (record?.kind !== "git_token") return undefined;
    if (!this.vault.hasKey(record.keyId)) await this.vault.refresh();
    const token = this.vault.open(record.sealed, { ownerId: userId, provider });
    void this.store.credentials.markUsed(record.id, this.now()).catch(() => undefined);
    return {
      host,
      username: record.metadata.username ?? DEFAULT_USERNAME,
      token,
      forge: (FORGES as readonly string[]).includes(record.metadata.forge ?? "")
        ? (record.metadata.forge as Forge)
        : null,
      apiUrl: record.metadata.apiUrl ?? null,
    };
  }
}
