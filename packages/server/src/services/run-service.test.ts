import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Store } from "@polydev/core";
import { openSqliteStore } from "@polydev/store";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../logger.js";
import type { CredentialService } from "./credential-service.js";
import type { GatewayHub } from "./gateway-hub.js";
import { RunService } from "./run-service.js";
import type { SandboxService } from "./sandbox-service.js";

let dir: string;
let store: Store;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "runs-restart-"));
  store = await openSqliteStore({ file: join(dir, "db.sqlite") });
});
afterAll(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

describe("runs across a server restart", () => {
  it("marks runs the previous process left queued or running as failed, with a reason and a done event", async () => {
    await store.users.create({ id: "usr_1", name: "one", role: "user", passwordHash: null, createdAt: 1 });
    const base = {
      userId: "usr_1",
      sandboxId: "sbx_1",
      groupId: null,
      agent: "claude",
      prompt: "p",
      model: null,
      cwd: ".",
      exitReason: null,
      finalText: null,
      inputTokens: 0,
      outputTokens: 0,
      timeoutMs: 1000,
      maxTurns: null,
      createdAt: 1,
      startedAt: null,
      endedAt: null,
    };
    await store.runs.insert({ ...base, id: "run_a", state: "running" });
    await store.runs.insert({ ...base, id: "run_b", state: "queued" });
    await store.runs.insert({ ...base, id: "run_c", state: "succeeded" });
    await store.runs.appendEvent({
      runId: "run_a",
      seq: 1,
      at: 2,
      body: '{"type":"status","state":"running"}',
      raw: null,
    });

    // Only the store matters at start-up; nothing is executed.
    const service = new RunService(
      store,
      {} as SandboxService,
      {} as GatewayHub,
      {},
      createLogger("silent"),
      () => 10,
      {
        credentials: {} as CredentialService,
        upstreams: { anthropic: "", openai: "", gemini: "" },
        recordUsage: async () => undefined,
      },
    );
    expect(await service.failInterrupted()).toBe(2);
    expect((await store.runs.get("run_a"))?.state).toBe("failed");
    expect((await store.runs.get("run_a"))?.exitReason).toContain("restarted");
    expect((await store.runs.get("run_b"))?.state).toBe("failed");
    expect((await store.runs.get("run_c"))?.state).toBe("succeeded");
    const events = await store.runs.events("run_a", 0, 10);
    expect(events.map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(JSON.parse(events[2]?.body ?? "{}")).toMatchObject({ type: "done" });
  });
});
