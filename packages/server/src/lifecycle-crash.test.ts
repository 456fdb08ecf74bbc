/**
 * Hibernate and resume write their state before they act (DESIGN.md: "every transition is
 * written before it is acted on; a crash mid-transition is finished or rolled back by the
 * reconciler"). A real server process is SIGKILLed while its driver is held (a test-only hook in
 * testing/child-server-main.ts) just before or just after freezing or thawing; after a restart the
 * sandbox's frozen state must match its row, and the row must say what was asked for.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChildServer } from "./testing/child-server.js";
import { isFrozen, removeDataDir, startChildServer, within } from "./testing/child-server.js";
import { createWithFootprint } from "./testing/fault-clients.js";

let server: ChildServer;
let dataDir: string;

beforeAll(async () => {
  server = await startChildServer();
  dataDir = server.dataDir;
});
afterAll(async () => {
  await server?.stop();
  if (dataDir) await removeDataDir(dataDir);
});

async function state(id: string): Promise<string> {
  return String((await server.api.call<{ state: string }>("GET", `/v1/sandboxes/${id}`)).body.state);
}

describe.each([
  ["hibernate", "hibernated"],
  ["resume", "running"],
] as const)("a %s interrupted by SIGKILL", (operation, target) => {
  it.each(["before", "after"] as const)("%s the driver acts is finished at the restart", async (point) => {
    const sandbox = await createWithFootprint(server);
    const id = sandbox.sandboxId;
    if (operation === "resume") {
      expect((await server.api.call("POST", `/v1/sandboxes/${id}/hibernate`)).status).toBe(200);
      expect(await isFrozen(sandbox)).toBe(true);
    }
    await server.command(`hang ${operation} ${point}`, new RegExp(`hang-armed ${operation}`));
    const from = server.output().length;
    // The server dies under this request: it never answers.
    const pending = server.api.call("POST", `/v1/sandboxes/${id}/${operation}`).catch(() => undefined);
    await server.waitForOutput(new RegExp(`hanging ${operation} ${point}`), 15_000, from);
    await server.kill9();
    await pending;

    server = await startChildServer({ dataDir });
    // Written before the driver was asked: the restart finds what was asked for...
    expect(await state(id)).toBe(target);
    // ...and the reconciler made the sandbox match it, whichever side of the act the crash fell.
    expect(await isFrozen(sandbox)).toBe(target === "hibernated");
    if (target === "running") {
      expect((await server.api.exec(id, "echo awake")).body.stdout).toBe("awake\n");
    } else {
      // Work on a hibernated sandbox resumes it.
      expect((await server.api.exec(id, "echo resumed")).body.stdout).toBe("resumed\n");
      expect(await isFrozen(sandbox)).toBe(false);
    }
    expect(await server.unhandledFaults()).toEqual([]);
    await server.api.call("DELETE", `/v1/sandboxes/${id}`);
  });
});

describe("lifecycle operations on one sandbox", () => {
  it("run one at a time: a resume does not thaw a sandbox while a hibernate is freezing it", async () => {
    const sandbox = await createWithFootprint(server);
    const id = sandbox.sandboxId;
    await server.command("hang hibernate before", /hang-armed hibernate/);
    const from = server.output().length;
    const settled: string[] = [];
    const hibernate = server.api.call("POST", `/v1/sandboxes/${id}/hibernate`).then((response) => {
      settled.push("hibernate");
      return response;
    });
    await server.waitForOutput(/hanging hibernate before/, 15_000, from);
    const resume = server.api.call("POST", `/v1/sandboxes/${id}/resume`).then((response) => {
      settled.push("resume");
      return response;
    });
    // Unserialised, the resume would now find the row hibernated, write it running, "thaw" the
    // not-yet-frozen sandbox and answer; the freeze released below would then leave a sandbox
    // recorded as running frozen. This pause only gives such a build the time to show it.
    await Promise.race([resume, sleep(1_000)]);
    expect(settled).toEqual([]);
    await server.command("release hibernate", /released hibernate/);
    const [hibernated, resumed] = await within(Promise.all([hibernate, resume]), 15_000, "both answers");
    expect(hibernated.status).toBe(200);
    expect(resumed.status).toBe(200);
    expect(settled).toEqual(["hibernate", "resume"]);
    expect(await state(id)).toBe("running");
    expect(await isFrozen(sandbox)).toBe(false);
    expect((await server.api.exec(id, "echo awake")).body.stdout).toBe("awake\n");
    expect(await server.unhandledFaults()).toEqual([]);
    await server.api.call("DELETE", `/v1/sandboxes/${id}`);
  });
});
