import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FakeForge } from "./forge.js";
import { startFakeForge } from "./forge.js";

let forge: FakeForge;
beforeAll(async () => {
  forge = await startFakeForge({ token: "tok_123456789" });
});
afterAll(() => forge.close());

const post = (path: string, headers: Record<string, string>, body: unknown) =>
  fetch(`${forge.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });

describe("the fake forge", () => {
  it("opens a GitHub pull request with the right token, refuses a wrong one and a second one", async () => {
    const pr = { title: "T", head: "feature", base: "main", body: "B" };
    const wrong = await post("/github/repos/o/r/pulls", { authorization: "Bearer nope" }, pr);
    expect(wrong.status).toBe(401);
    const made = await post("/github/repos/o/r/pulls", { authorization: "Bearer tok_123456789" }, pr);
    expect(made.status).toBe(201);
    expect(await made.json()).toMatchObject({ html_url: expect.stringMatching(/\/o\/r\/pull\/\d+$/) });
    const twice = await post("/github/repos/o/r/pulls", { authorization: "token tok_123456789" }, pr);
    expect(twice.status).toBe(422);
    expect(forge.calls.map((c) => [c.forge, c.repo, c.authorized])).toEqual([
      ["github", "o/r", false],
      ["github", "o/r", true],
      ["github", "o/r", true],
    ]);
  });

  it("opens a GitLab merge request by its project path", async () => {
    const mr = { title: "T", source_branch: "feature", target_branch: "main" };
    const made = await post(
      "/gitlab/api/v4/projects/group%2Fapp/merge_requests",
      { "private-token": "tok_123456789" },
      mr,
    );
    expect(made.status).toBe(201);
    expect(await made.json()).toMatchObject({
      web_url: expect.stringContaining("/group/app/-/merge_requests/"),
    });
    const wrong = await post("/gitlab/api/v4/projects/group%2Fapp/merge_requests", {}, mr);
    expect(wrong.status).toBe(401);
    expect(forge.calls.at(-2)).toMatchObject({ forge: "gitlab", repo: "group/app", authorized: true });
  });
});
