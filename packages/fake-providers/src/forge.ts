/**
 * A fake forge: the pull-request calls of GitHub's REST API (`POST /repos/{owner}/{repo}/pulls`)
 * and GitLab's (`POST /projects/{id}/merge_requests`) on one loopback port. It checks the token
 * each forge expects (GitHub: `Authorization: Bearer` or `token`; GitLab: `PRIVATE-TOKEN`),
 * records every call, and answers as the forge does: 201 with the pull request's URL, 401 for a
 * wrong token, 422 (GitHub) or 409 (GitLab) for a second one from the same branch.
 *
 * @example
 * const forge = await startFakeForge({ token: "ghp_test" });
 * // store a git credential with apiUrl: `${forge.url}/github` (or `${forge.url}/gitlab/api/v4`)
 * await forge.close();
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { readBody, sendJson } from "./http-io.js";

export interface ForgeCall {
  forge: "github" | "gitlab";
  method: string;
  path: string;
  /** The repository as the forge names it: `owner/repo` (GitHub) or the decoded project path (GitLab). */
  repo: string;
  body: Record<string, unknown>;
  /** Whether the call carried the expected token. */
  authorized: boolean;
}

export interface FakeForge {
  /** `http://127.0.0.1:<port>`; GitHub's API at `${url}/github`, GitLab's at `${url}/gitlab/api/v4`. */
  url: string;
  calls: ForgeCall[];
  close(): Promise<void>;
}

export interface FakeForgeOptions {
  /** The token every call must carry. */
  token: string;
}

const GITHUB_PULLS = /^\/github\/repos\/([^/]+)\/([^/]+)\/pulls$/;
const GITLAB_MRS = /^\/gitlab\/api\/v4\/projects\/([^/]+)\/merge_requests$/;
const MAX_BODY_BYTES = 1024 * 1024;

export async function startFakeForge(options: FakeForgeOptions): Promise<FakeForge> {
  const calls: ForgeCall[] = [];
  const opened = new Set<string>();
  let next = 1;
  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) sendJson(res, 500, { message: `fake-forge: ${String(error)}` });
      else res.destroy();
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? "GET";
    const path = new URL(req.url ?? "/", "http://fake-forge.invalid").pathname;
    const raw = await readBody(req);
    if (raw.length > MAX_BODY_BYTES) return sendJson(res, 413, { message: "body too large" });
    let body: Record<string, unknown> = {};
    try {
      body = JSON.parse(raw.toString("utf8") || "{}") as Record<string, unknown>;
    } catch {
      return sendJson(res, 400, { message: "Problems parsing JSON" });
    }
    const github = method === "POST" ? GITHUB_PULLS.exec(path) : null;
    const gitlab = method === "POST" ? GITLAB_MRS.exec(path) : null;
    if (github) {
      const auth = req.headers.authorization ?? "";
      const authorized = auth === `Bearer ${options.token}` || auth === `token ${options.token}`;
      const repo = `${github[1]}/${github[2]}`;
      calls.push({ forge: "github", method, path, repo, body, authorized });
      if (!authorized) return sendJson(res, 401, { message: "Bad credentials" });
      if (typeof body.title !== "string" || typeof body.head !== "string" || typeof body.base !== "string")
        return sendJson(res, 422, { message: "Validation Failed" });
      const key = `github ${repo} ${body.head}`;
      if (opened.has(key))
        return sendJson(res, 422, { message: `A pull request already exists for ${body.head}.` });
      opened.add(key);
      const number = next++;
      return sendJson(res, 201, {
        number,
        html_url: `https://github.example/${repo}/pull/${number}`,
        state: "open",
        title: body.title,
      });
    }
    if (gitlab) {
      const authorized = req.headers["private-token"] === options.token;
      const repo = decodeURIComponent(gitlab[1] ?? "");
      calls.push({ forge: "gitlab", method, path, repo, body, authorized });
      if (!authorized) return sendJson(res, 401, { message: "401 Unauthorized" });
      if (typeof body.title !== "string" || typeof body.source_branch !== "string")
        return sendJson(res, 400, { message: "title or source_branch is missing" });
      const key = `gitlab ${repo} ${body.source_branch}`;
      if (opened.has(key))
        return sendJson(res, 409, {
          message: ["Another open merge request already exists for this source branch"],
        });
      opened.add(key);
      const iid = next++;
      return sendJson(res, 201, {
        iid,
        web_url: `https://gitlab.example/${repo}/-/merge_requests/${iid}`,
        state: "opened",
        title: body.title,
      });
    }
    return sendJson(res, 404, { message: "Not Found" });
  }

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    calls,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
