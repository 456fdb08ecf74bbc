/**
 * Opens a pull request (GitHub) or merge request (GitLab) for a pushed branch, from the host,
 * with the user's git token from the vault. The API base is the credential's own (GitHub
 * Enterprise, self-hosted GitLab, a test's fake forge) or the forge's default for the host; it
 * obeys the same https-and-public-address rule as the git relay.
 */
import { PolydevError } from "@polydev/core";
import { request } from "undici";
import type { Forge, GitCredential } from "../git-credentials.js";
import { publicOnlyAgent, type RemoteTarget, remoteTarget } from "../git-relay.js";

/** A forge's answer is read at most this far (it is JSON about one pull request). */
const MAX_ANSWER_BYTES = 256 * 1024;
const FORGE_TIMEOUT_MS = 30_000;

export interface PullRequestInput {
  title: string;
  body: string;
  head: string;
  base: string;
}

/** The API base a forge is reached at for a repository on `target`'s host. */
export function forgeApiBase(forge: Forge, target: RemoteTarget, apiUrl: string | null): string {
  if (apiUrl) return apiUrl.replace(/\/+$/, "");
  if (forge === "github")
    return target.host === "github.com" ? "https://api.github.com" : `${target.origin}/api/v3`;
  return `${target.origin}/api/v4`;
}

export async function openPullRequest(
  credential: GitCredential,
  target: RemoteTarget,
  input: PullRequestInput,
  insecureHosts: readonly string[],
): Promise<string> {
  const forge = credential.forge;
  if (!forge)
    throw new PolydevError(
      "invalid_request",
      `Polydev does not know which forge ${target.host} is: store its git credential with forge "github" or "gitlab"`,
    );
  const base = forgeApiBase(forge, target, credential.apiUrl);
  const api = remoteTarget(base, insecureHosts);
  const repo = target.path.replace(/^\/+/, "").replace(/\.git$/, "");
  const call =
    forge === "github"
      ? {
          url: `${base}/repos/${repo}/pulls`,
          headers: {
            authorization: `Bearer ${credential.token}`,
            accept: "application/vnd.github+json",
            "x-github-api-version": "2022-11-28",
          },
          body: { title: input.title, body: input.body, head: input.head, base: input.base },
          link: "html_url",
        }
      : {
          url: `${base}/projects/${encodeURIComponent(repo)}/merge_requests`,
          headers: { "private-token": credential.token },
          body: {
            title: input.title,
            description: input.body,
            source_branch: input.head,
            target_branch: input.base,
          },
          link: "web_url",
        };
  const dispatcher = publicOnlyAgent(api.insecure);
  try {
    let status: number;
    let text: string;
    try {
      const response = await request(call.url, {
        method: "POST",
        headers: { ...call.headers, "content-type": "application/json", "user-agent": "polydev" },
        body: JSON.stringify(call.body),
        dispatcher,
        maxRedirections: 0,
        headersTimeout: FORGE_TIMEOUT_MS,
        bodyTimeout: FORGE_TIMEOUT_MS,
      });
      status = response.statusCode;
      text = await readBounded(response.body);
    } catch (error) {
      throw new PolydevError(
        "upstream_unreachable",
        `${forge} at ${api.host} could not be reached to open the pull request: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
    let answer: Record<string, unknown> = {};
    try {
      answer = JSON.parse(text) as Record<string, unknown>;
    } catch {
      // Not JSON: reported by status below.
    }
    if (status < 200 || status >= 300) {
      const said = typeof answer.message === "string" ? answer.message : JSON.stringify(answer.message ?? "");
      throw new PolydevError(
        "upstream_unreachable",
        `${forge} refused the pull request (${status})${said ? `: ${said.slice(0, 300)}` : ""}`,
        { details: { forgeStatus: status } },
      );
    }
    const link = answer[call.link];
    if (typeof link !== "string")
      throw new PolydevError("upstream_unreachable", `${forge} answered without the pull request's URL`);
    return link.slice(0, 2048);
  } finally {
    void dispatcher.close().catch(() => undefined);
  }
}

async function readBounded(body: AsyncIterable<Buffer>): Promise<string> {
  const chunks: Buffer[] = [];
  let held = 0;
  for await (const chunk of body) {
    if (held >= MAX_ANSWER_BYTES) continue;
    chunks.push(chunk.subarray(0, MAX_ANSWER_BYTES - held));
    held += chunk.length;
  }
  return Buffer.concat(chunks).toString("utf8");
}
