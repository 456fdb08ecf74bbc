/**
 * How git in a sandbox reaches a remote: straight over the sandbox's own egress (a public
 * repository, or one the sandbox itself can authenticate to), or, when the user stored a git
 * credential for the remote's host, through the host's relay that adds the token (git-relay.ts),
 * so the token never enters the sandbox.
 */
import type { AgentConnection } from "@polydev/core";
import type { Logger } from "pino";
import type { GitCredential, GitCredentials } from "./git-credentials.js";
import { type RemoteTarget, remoteTarget, withGitRelay } from "./git-relay.js";

export class GitAccess {
  constructor(
    private readonly credentials: GitCredentials,
    readonly insecureHosts: readonly string[],
    private readonly log: Logger,
  ) {}

  credentialFor(userId: string, host: string): Promise<GitCredential | undefined> {
    return this.credentials.forHost(userId, host);
  }

  /**
   * Runs `command` with the URL git should use for `url`: the relay's while `command` runs when a
   * token is stored for its host, else `url` itself.
   */
  async run<T>(
    userId: string,
    connection: AgentConnection,
    url: string,
    command: (via: string) => Promise<T>,
  ): Promise<{ value: T; target: RemoteTarget | undefined; relayed: boolean }> {
    const host = httpHost(url);
    const credential = host ? await this.credentials.forHost(userId, host) : undefined;
    if (!credential) return { value: await command(url), target: undefined, relayed: false };
    const target = remoteTarget(url, this.insecureHosts);
    const value = await withGitRelay(
      connection,
      target,
      { username: credential.username, token: credential.token },
      this.log,
      command,
    );
    return { value, target, relayed: true };
  }
}

/** The `host[:port]` of an http(s) URL, lowercase; undefined for other transports. */
export function httpHost(url: string): string | undefined {
  try {
    const parsed = new URL(url);
    return parsed.protocol === "https:" || parsed.protocol === "http:"
      ? parsed.host.toLowerCase()
      : undefined;
  } catch {
    return undefined;
  }
}
