/** Pull requests against the fake forge: each forge's call, its token, and its refusals. */
import type { FakeForge } from "@polydev/fake-providers";
import { startFakeForge } from "@polydev/fake-providers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { GitCredential } from "../git-credentials.js";
import { remoteTarget } from "../git-relay.js";
import { forgeApiBase, openPullRequest } from "./pull-requests.js";

let forge: FakeForge;
let insecure: string[];
beforeAll(async () => {
  forge = await startFakeForge({ token: "glpat_token_0123456789" });
  insecure = [new URL(forge.url).host];
});
afterAll(() => forge.close());

const credential = (over: Partial<GitCredential>): GitCredential => ({
  host: "gitlab.example",
  username: "oauth2",
  token: "glpat_token_0123456789",
  forge: "gitlab",
  apiUrl: null,
  ...over,
});
const target = remoteTarget("https://gitlab.example/group/sub/app.git", []);
const input = { title: "Fix", body: "Body", head: "polydev/abc", base: "main" };

describe("opening pull requests", () => {
  it("defaults each forge's API base from the host", () => {
    expect(forgeApiBase("github", remoteTarget("https://github.com/o/r.git", []), null)).toBe(
      "https://api.github.com",
    );
    expect(forgeApiBase("github", remoteTarget("https://ghe.corp/o/r.git", []), null)).toBe(
      "https://ghe.corp/api/v3",
    );
    expect(forgeApiBase("gitlab", target, null)).toBe("https://gitlab.example/api/v4");
  });

  it("opens a GitLab merge request with PRIVATE-TOKEN and returns its URL", async () => {
    const url = await openPullRequest(
      credential({ apiUrl: `${forge.url}/gitlab/api/v4` }),
      target,
      input,
      insecure,
    );
    expect(url).toBe("https://gitlab.example/group/sub/app/-/merge_requests/1");
    expect(forge.calls.at(-1)).toMatchObject({
      forge: "gitlab",
      repo: "group/sub/app",
      authorized: true,
      body: { title: "Fix", description: "Body", source_branch: "polydev/abc", target_branch: "main" },
    });
  });

  it("reports the forge's refusal (a wrong token, a second request) without the token", async () => {
    const wrong = openPullRequest(
      credential({ token: "wrong_token_123", apiUrl: `${forge.url}/gitlab/api/v4` }),
      target,
      input,
      insecure,
    );
    await expect(wrong).rejects.toMatchObject({
      code: "upstream_unreachable",
      message: expect.stringMatching(/refused.*401/),
    });
    const again = openPullRequest(
      credential({ apiUrl: `${forge.url}/gitlab/api/v4` }),
      target,
      input,
      insecure,
    );
    await expect(again).rejects.toThrow(/409/);
    await again.catch((error: Error) => expect(error.message).not.toContain("glpat_token"));
  });

  it("reaches a forge over plain http or a private address only when the operator allowed it", async () => {
    const refused = openPullRequest(credential({ apiUrl: `${forge.url}/gitlab/api/v4` }), target, input, []);
    await expect(refused).rejects.toMatchObject({ code: "invalid_request" });
  });

  it("asks which forge an unknown host is", async () => {
    await expect(openPullRequest(credential({ forge: null }), target, input, insecure)).rejects.toThrow(
      /forge "github" or "gitlab"/,
    );
  });
});
