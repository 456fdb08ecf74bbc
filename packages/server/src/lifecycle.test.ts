import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApiClient, TestServer } from "./testing/harness.js";
import { createUser, startTestServer } from "./testing/harness.js";

let t: TestServer;
let api: ApiClient;
beforeAll(async () => {
  t = await startTestServer({ reconcileIntervalMs: 200 });
  api = await createUser(t.api, "lifecycle-user");
});
afterAll(async () => {
  await t?.close();
});

async function waitForState(id: string, state: string, timeoutMs = 15_000): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const response = await api.call<{ state: string }>("GET", `/v1/sandboxes/${id}`);
    if (response.body.state === state) return response.body;
    if (Date.now() > deadline) throw new Error(`still ${response.body.state}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe("lifecycle timeouts", () => {
  it("destroys a sandbox at its hard timeout even while it is in use", async () => {
    const id = await api.createSandbox({ timeoutMs: 1500, idleTimeoutMs: 60_000 });
    const keepBusy = setInterval(() => void api.exec(id, "true"), 200);
    try {
      await waitForState(id, "destroyed");
    } finally {
      clearInterval(keepBusy);
    }
    const logs = await api.call<{ items: { message: string }[] }>("GET", `/v1/sandboxes/${id}/logs`);
    expect(logs.body.items.map((l) => l.message).join("\n")).toContain("timeout");
  });

  it("ends a sandbox after its idle timeout (stopped where the driver keeps disks, else destroyed), and not while it is active", async () => {
    // A durable driver keeps the disk of an idle sandbox (lifecycle-durable.test.ts covers the rest).
    const { features } = await t.server.driver.probe();
    const idle = await api.createSandbox({ idleTimeoutMs: 1500 });
    const active = await api.createSandbox({ idleTimeoutMs: 60_000 });
    await waitForState(idle, features.includes("durable") ? "stopped" : "destroyed");
    expect((await api.call<{ state: string }>("GET", `/v1/sandboxes/${active}`)).body.state).toBe("running");
    const logs = await api.call<{ items: { message: string }[] }>("GET", `/v1/sandboxes/${idle}/logs`);
    expect(logs.body.items.map((l) => l.message).join("\n")).toContain("idle");
  });

  it("marks a sandbox whose processes vanished as failed and keeps its logs", async () => {
    const id = await api.createSandbox();
    const record = await t.server.store.sandboxes.get(id);
    if (!record?.handle) throw new Error("no handle");
    await t.server.driver.destroy(record.handle);
    const failed = await waitForState(id, "failed");
    expect(String(failed.failureReason)).toContain("gone");
    const logs = await api.call<{ items: { message: string }[] }>("GET", `/v1/sandboxes/${id}/logs`);
    expect(logs.body.items.map((l) => l.message).join("\n")).toContain("failed");
    const exec = await api.exec(id, "true");
    expect(exec.status).toBe(409);
  });
});
