/**
 * Placement over real node records in a real SQLite store: the least loaded node by reserved
 * memory as a share of its total, the receiving node on a tie, only nodes with the driver and room,
 * never an expired one; and a node's record carries its own creating and running sandboxes.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Clock, NodeRecord, Store } from "@polydev/core";
import { openSqliteStore } from "@polydev/store";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NodeRegistry } from "./nodes.js";

let dir: string;
let store: Store;
let now = 1_000_000;
const clock: Clock = { now: () => now };

const record = (name: string, fields: Partial<NodeRecord>): NodeRecord => ({
  name,
  url: `http://${name}:7420`,
  drivers: ["namespace"],
  cpuCount: 4,
  memoryMb: 8192,
  runningSandboxes: 0,
  reservedMemoryMb: 0,
  startedAt: 0,
  refreshedAt: now,
  expiresAt: now + 15_000,
  ...fields,
});

const registry = (name: string) =>
  new NodeRegistry({
    name,
    url: () => `http://${name}:7420`,
    drivers: ["namespace"],
    refreshIntervalMs: 5000,
    leaseMs: 15_000,
    store,
    clock,
    log: pino({ level: "silent" }),
    capacity: { cpuCount: 2, memoryMb: 4096 },
  });

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "polydev-nodes-"));
  store = await openSqliteStore({ file: join(dir, "polydev.db") });
});
afterAll(async () => {
  await store?.close();
  await rm(dir, { recursive: true, force: true });
});

describe("placement", () => {
  it("picks the least loaded node with the driver and room, the receiving one on a tie, never an expired one", async () => {
    await store.nodes.put(record("self", { reservedMemoryMb: 2048 }));
    await store.nodes.put(record("busy", { reservedMemoryMb: 6144 }));
    await store.nodes.put(record("idle-small", { memoryMb: 2048, reservedMemoryMb: 0 }));
    await store.nodes.put(record("idle-gvisor", { drivers: ["gvisor"] }));
    await store.nodes.put(record("dead", { expiresAt: now - 1 }));
    const here = registry("self");
    // idle-small: (0 + 512) / 2048 = 0.25 beats self's (2048 + 512) / 8192 = 0.31.
    expect((await here.place({ driver: "namespace", memoryMb: 512 }))?.name).toBe("idle-small");
    // 4096 MiB does not fit idle-small; self (0.75) beats busy (no room).
    expect(await here.place({ driver: "namespace", memoryMb: 4096 })).toBeUndefined();
    expect((await here.place({ driver: "gvisor", memoryMb: 512 }))?.name).toBe("idle-gvisor");
    // Nobody has room: the receiving node takes it.
    expect(await here.place({ driver: "namespace", memoryMb: 100_000 })).toBeUndefined();
    // A tie goes to the receiving node; between others, by name.
    await store.nodes.put(record("self", { reservedMemoryMb: 0 }));
    await store.nodes.put(record("idle-small", { memoryMb: 8192 }));
    expect(await here.place({ driver: "namespace", memoryMb: 512 })).toBeUndefined();
    expect((await registry("elsewhere").place({ driver: "namespace", memoryMb: 512 }))?.name).toBe(
      "idle-small",
    );
  });

  it("registers the node with its own creating and running sandboxes and keeps it live on its lease", async () => {
    await store.users.create({ id: "usr_1", name: "ann", role: "user", passwordHash: null, createdAt: 0 });
    const base = {
      userId: "usr_1",
      driver: "namespace",
      cpu: 1,
      memoryMb: 300,
      diskMb: 1024,
      pidsMax: 100,
      network: "none" as const,
      egressPolicy: null,
      env: {},
      metadata: {},
      timeoutMs: 60_000,
      idleTimeoutMs: 60_000,
      createdAt: now,
      expiresAt: now + 60_000,
    };
    await store.sandboxes.insert({ ...base, id: "sbx_1", state: "running", node: "n1" });
    await store.sandboxes.insert({ ...base, id: "sbx_2", state: "creating", node: "n1" });
    await store.sandboxes.insert({ ...base, id: "sbx_3", state: "running", node: "n2" });
    const n1 = registry("n1");
    await n1.refresh();
    expect(await store.nodes.get("n1")).toMatchObject({
      url: "http://n1:7420",
      runningSandboxes: 2,
      reservedMemoryMb: 600,
      memoryMb: 4096,
      expiresAt: now + 15_000,
    });
    expect(n1.owns({ node: "n1" })).toBe(true);
    expect(n1.owns({ node: null })).toBe(true);
    expect(n1.owns({ node: "n2" })).toBe(false);
    expect((await n1.live("n1"))?.name).toBe("n1");
    now += 15_000;
    expect(await n1.live("n1")).toBeUndefined();
  });
});
