import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TestServer } from "../../server/src/testing/harness.js";
import { createUser, startTestServer } from "../../server/src/testing/harness.js";
import { Polydev } from "./client.js";
import { NotFoundError } from "./errors.js";

let t: TestServer;
let polydev: Polydev;
let boxId: string;

beforeAll(async () => {
  t = await startTestServer();
  const user = await createUser(t.api, "processes-sdk-user");
  polydev = new Polydev({ baseUrl: t.url, apiKey: user.key });
  boxId = (await polydev.sandboxes.create({ memoryMb: 256 })).id;
});
afterAll(async () => {
  await t?.close();
});

describe("polydev.sandboxes.processes, logs and stats", () => {
  it("starts a background process, follows its output to the end, and reads it again from an offset", async () => {
    const started = await polydev.sandboxes.processes.start(boxId, {
      cmd: "echo first; sleep 0.3; echo second",
    });
    expect(started.state).toBe("running");
    const followed = await new Response(
      await polydev.sandboxes.processes.output(boxId, started.id, { follow: true }),
    ).text();
    expect(followed).toBe("first\nsecond\n");
    expect(await polydev.sandboxes.processes.get(boxId, started.id)).toMatchObject({
      state: "exited",
      exitCode: 0,
    });
    const tail = await new Response(
      await polydev.sandboxes.processes.output(boxId, started.id, { offset: "first\n".length }),
    ).text();
    expect(tail).toBe("second\n");
    expect((await polydev.sandboxes.processes.list(boxId)).items.map((p) => p.id)).toContain(started.id);
  });

  it("signals a process and reports how it ended", async () => {
    const sleeper = await polydev.sandboxes.processes.start(boxId, { cmd: ["sleep", "60"] });
    await polydev.sandboxes.processes.signal(boxId, sleeper.id, "SIGKILL");
    await expect
      .poll(async () => (await polydev.sandboxes.processes.get(boxId, sleeper.id)).state)
      .toBe("exited");
    // Killed directly it reports the signal; behind the sandbox's wrapper, the shell's 128 + 9.
    const ended = await polydev.sandboxes.processes.get(boxId, sleeper.id);
    expect(ended.signal === "SIGKILL" || ended.exitCode === 137, JSON.stringify(ended)).toBe(true);
    await expect(polydev.sandboxes.processes.get(boxId, "proc_missing")).rejects.toBeInstanceOf(
      NotFoundError,
    );
  });

  it("reads live stats and the lifecycle log that outlives the sandbox", async () => {
    const stats = await polydev.sandboxes.stats(boxId);
    expect(stats.memoryLimitBytes).toBe(256 * 1024 * 1024);
    expect(stats.pids).toBeGreaterThan(0);
    const box = await polydev.sandboxes.create({ memoryMb: 128 });
    await polydev.sandboxes.destroy(box.id);
    const logs = await polydev.sandboxes.logs(box.id);
    expect(logs.items.map((line) => line.message).join("\n")).toMatch(/destroy/);
    const later = await polydev.sandboxes.logs(box.id, { afterId: logs.items.at(-1)?.id ?? 0 });
    expect(later.items).toEqual([]);
  });
});
