/**
 * Keeping the winner of a group: each agent worked in its own fork of the sandbox (where the
 * driver forks; this server has images on when the host can build them) or its own copy, and the
 * kept change lands in the project of the sandbox the group started from. Keeping a second run
 * of the same group is allowed and reported.
 */
import { existsSync } from "node:fs";
import type { FakeProviders } from "@polydev/fake-providers";
import { startFakeProviders } from "@polydev/fake-providers";
import { testBaseRootfs, testImagesUnavailable, testToolbox } from "@polydev/images/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApiClient, TestServer } from "./testing/harness.js";
import { createUser, IMAGE_BUILD_TIMEOUT_MS, startTestServer, waitForImage } from "./testing/harness.js";

const images =
  (testImagesUnavailable() ?? (existsSync("/usr/sbin/mkfs.xfs") ? null : "no xfsprogs")) === null;

interface Run {
  id: string;
  state: string;
  exitReason: string | null;
  sandboxId: string;
  groupId: string | null;
}
interface Keep {
  runId: string;
  branch: string;
  commit: string;
  merged: boolean;
  otherKeptRuns: string[];
}

let fake: FakeProviders;
let t: TestServer;
let alice: ApiClient;
let sandbox: string;

async function waitForEnd(id: string): Promise<Run> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const run = (await alice.call<Run>("GET", `/v1/runs/${id}`)).body;
    if (["succeeded", "failed", "cancelled", "timed_out"].includes(run.state)) return run;
    if (Date.now() > deadline) throw new Error(`run still ${run.state}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function sh(line: string, id = sandbox): Promise<string> {
  const result = await alice.exec(id, ["/bin/sh", "-c", line]);
  const body = result.body as { exitCode: number; stdout: string; stderr: string };
  expect(body.exitCode, `${line}: ${body.stderr}`).toBe(0);
  return body.stdout;
}

describe(`keeping a group's winner (${images ? "each agent in a fork" : "each agent in a copy: no images on this host"})`, () => {
  beforeAll(async () => {
    if (images) await Promise.all([testBaseRootfs(), testToolbox()]);
    fake = await startFakeProviders();
    t = await startTestServer({
      upstreams: { anthropic: fake.url, openai: fake.url, gemini: fake.url },
      images: { enabled: images },
    });
    if (images) await waitForImage(t.api, "polydev/base");
    alice = await createUser(t.api, "alice");
    await alice.call("PUT", "/v1/credentials/anthropic", { apiKey: "sk-real-provider-key-123456" });
    sandbox = await alice.createSandbox();
    await sh("mkdir -p work/app && cd work/app && printf 'base\\n' > README");
    const added = await alice.call("POST", `/v1/sandboxes/${sandbox}/projects`, { path: "work/app" });
    expect(added.status, JSON.stringify(added.body)).toBe(201);
  }, IMAGE_BUILD_TIMEOUT_MS);
  afterAll(async () => {
    await t?.close();
    await fake?.close();
  });

  it("lands the kept change in the sandbox the group started from, and reports a second keep", async () => {
    // Each agent writes a file named after its working folder's inode-free identity: its run.
    let turn = 0;
    fake.setScript((view) => {
      if (view.lastIsToolResult) return { text: "Done." };
      turn += 1;
      return {
        toolCall: {
          tool: "run_command",
          arguments: { command: `printf 'agent ${turn}\\n' > agent${turn}.txt` },
        },
      };
    });
    const started = await alice.call<{ groupId: string; runs: Run[] }>("POST", "/v1/runs", {
      agents: ["builtin", "builtin"],
      prompt: "add your file",
      sandboxId: sandbox,
    });
    expect(started.status, JSON.stringify(started.body)).toBe(201);
    const runs = [];
    for (const begun of started.body.runs) {
      const run = await waitForEnd(begun.id);
      expect(run.state, run.exitReason ?? "").toBe("succeeded");
      runs.push(run);
    }
    fake.setScript(undefined);
    const [first, second] = runs as [Run, Run];
    if (images) expect(first.sandboxId).not.toBe(sandbox);
    const firstFile = (await alice.call<{ files: { path: string }[] }>("GET", `/v1/runs/${first.id}/changes`))
      .body.files[0]?.path;
    const secondFile = (
      await alice.call<{ files: { path: string }[] }>("GET", `/v1/runs/${second.id}/changes`)
    ).body.files[0]?.path;
    expect(firstFile).toMatch(/^agent\d\.txt$/);

    const kept = await alice.call<Keep>("POST", `/v1/runs/${first.id}/keep`, {});
    expect(kept.status, JSON.stringify(kept.body)).toBe(200);
    expect(kept.body).toMatchObject({ merged: true, otherKeptRuns: [] });
    // In the source sandbox's project: the branch, the commit at HEAD, the file on disk.
    expect((await sh("git -C projects/app rev-parse HEAD")).trim()).toBe(kept.body.commit);
    expect(await sh(`cat projects/app/${firstFile}`)).toMatch(/^agent \d\n$/);
    expect(await sh("git -C projects/app status --porcelain")).toBe("");

    // The runner-up too: allowed, merged beside the first (other files), and reported.
    const again = await alice.call<Keep>("POST", `/v1/runs/${second.id}/keep`, {});
    expect(again.status, JSON.stringify(again.body)).toBe(200);
    expect(again.body.otherKeptRuns).toEqual([first.id]);
    expect(again.body.merged).toBe(true);
    expect(await sh(`cat projects/app/${firstFile} projects/app/${secondFile}`)).toMatch(
      /^agent \d\nagent \d\n$/,
    );
    expect(await sh("git -C projects/app status --porcelain")).toBe("");
  });
});
