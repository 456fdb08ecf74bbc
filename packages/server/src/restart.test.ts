/**
 * The server is a real child process here, killed with SIGKILL: the only honest way to test
 * that the database and the reconciler bring sandboxes back (or fail them) after a crash.
 */

import type { ChildProcess } from "node:child_process";
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { NamespaceDriver } from "@polydev/driver-namespace";
import { openSqliteStore } from "@polydev/store";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "./logger.js";
import { ApiClient } from "./testing/harness.js";

const repoRoot = resolve(import.meta.dirname, "../../..");
let dataDir: string;
let child: ChildProcess | undefined;

async function startChild(): Promise<{ url: string; process: ChildProcess }> {
  const process = spawn(
    "node",
    [
      "--conditions=source",
      "--import",
      "tsx",
      join(repoRoot, "packages/cli/src/main.ts"),
      "up",
      "--port",
      "0",
      "--data-dir",
      dataDir,
    ],
    {
      cwd: repoRoot,
      // Host-view sandboxes: this is about re-adopting processes (durable disks have their own test).
      env: { ...globalThis.process.env, POLYDEV_LOG_LEVEL: "warn", POLYDEV_IMAGES: "off" },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let output = "";
  const url = await new Promise<string>((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start: ${output}`)), 30_000);
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      const match = /running at (http:\/\/\S+)/.exec(output);
      if (match?.[1]) {
        clearTimeout(timer);
        resolveUrl(match[1]);
      }
    };
    process.stdout?.on("data", onData);
    process.stderr?.on("data", onData);
    process.once("exit", (code) => reject(new Error(`server exited ${code}: ${output}`)));
  });
  return { url, process };
}

function kill9(process: ChildProcess): Promise<void> {
  return new Promise((resolveKill) => {
    process.once("exit", () => resolveKill());
    process.kill("SIGKILL");
  });
}

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), "polydev-restart-"));
});
afterAll(async () => {
  if (child && child.exitCode === null && child.signalCode === null) await kill9(child);
  const driver = new NamespaceDriver({ rootDir: join(dataDir, "sandboxes"), log: createLogger("silent") });
  for (const observed of await driver.list()) await driver.destroy(observed.handle);
  await rm(dataDir, { recursive: true, force: true });
});

describe("restart after SIGKILL", () => {
  it("re-adopts live sandboxes, fails vanished ones with logs, and destroys orphans", async () => {
    const first = await startChild();
    child = first.process;
    const key = (await readFile(join(dataDir, "admin-api-key"), "utf8")).trim();
    let api = new ApiClient(first.url, key);
    const kept = await api.createSandbox();
    await api.exec(kept, "echo persisted > note.txt");
    const bg = await api.call<{ id: string }>("POST", `/v1/sandboxes/${kept}/processes`, {
      cmd: "while true; do date +%s%N >> ticks; sleep 0.1; done",
    });
    const vanished = await api.createSandbox();
    await kill9(first.process);

    // While the server is down: one sandbox dies, and a stray one appears that no row knows.
    const driver = new NamespaceDriver({ rootDir: join(dataDir, "sandboxes"), log: createLogger("silent") });
    const store = await openSqliteStore({ file: join(dataDir, "polydev.db") });
    const vanishedHandle = (await store.sandboxes.get(vanished))?.handle;
    await store.close();
    if (!vanishedHandle) throw new Error("no handle for the sandbox to kill");
    await driver.destroy(vanishedHandle);
    const orphan = await driver.create({
      id: "sbx_orphan_test",
      limits: { cpu: 1, memoryMb: 128, diskMb: 64, pidsMax: 64 },
      network: "none",
      env: {},
    });
    expect(await driver.isAlive(orphan)).toBe(true);

    const second = await startChild();
    child = second.process;
    api = new ApiClient(second.url, key);

    const keptState = await api.call<{ state: string }>("GET", `/v1/sandboxes/${kept}`);
    expect(keptState.body.state).toBe("running");
    expect((await api.exec(kept, "cat note.txt")).body.stdout).toBe("persisted\n");
    const processes = await api.call<{ items: { id: string; state: string }[] }>(
      "GET",
      `/v1/sandboxes/${kept}/processes`,
    );
    expect(processes.body.items).toEqual([expect.objectContaining({ id: bg.body.id, state: "running" })]);

    const vanishedState = await api.call<{ state: string; failureReason: string }>(
      "GET",
      `/v1/sandboxes/${vanished}`,
    );
    expect(vanishedState.body.state).toBe("failed");
    const logs = await api.call<{ items: { message: string }[] }>("GET", `/v1/sandboxes/${vanished}/logs`);
    expect(logs.body.items.length).toBeGreaterThan(0);

    expect(await driver.isAlive(orphan)).toBe(false);
    const onHost = (await driver.list()).map((o) => o.sandboxId);
    expect(onHost).not.toContain("sbx_orphan_test");
    expect(onHost).not.toContain(vanished);

    await api.call("DELETE", `/v1/sandboxes/${kept}`);
    expect((await driver.list()).filter((o) => o.alive)).toEqual([]);
    await kill9(second.process);
  });
});
