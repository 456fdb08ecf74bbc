import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import type { SandboxHandle, SandboxSpec } from "@polydev/core";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { NamespaceDriver } from "./namespace-driver.js";
import { privateCgroupName, privateUidBase, removeCgroupParent } from "./testing/private-host.js";
import { UidAllocator } from "./uid-allocator.js";

const run = promisify(execFile);
const ALLOCATOR_MODULE = fileURLToPath(new URL("./uid-allocator.ts", import.meta.url));

describe("host uid registry (real files, several allocators and processes)", () => {
  let scratch: string;
  let registryDir: string;
  const base = 500_000;

  beforeEach(async () => {
    scratch = await mkdtemp(join(tmpdir(), "polydev-uids-"));
    registryDir = join(scratch, "registry");
  });
  afterEach(async () => {
    await rm(scratch, { recursive: true, force: true });
  });

  /** A driver root with sandbox directories made for `ids`, as create makes them first. */
  async function root(name: string, ids: string[]): Promise<string> {
    const dir = join(scratch, name);
    for (const id of ids) await mkdir(join(dir, id), { recursive: true });
    return dir;
  }

  it("never gives one uid to two allocators on different roots with the same base", async () => {
    const ids = Array.from({ length: 40 }, (_, i) => `s${i}`);
    const a = new UidAllocator({ registryDir, rootDir: await root("a", ids), base, range: 1000 });
    const b = new UidAllocator({ registryDir, rootDir: await root("b", ids), base, range: 1000 });
    const uids = await Promise.all(ids.flatMap((id) => [a.allocate(id), b.allocate(id)]));
    expect(new Set(uids).size).toBe(uids.length);
    expect((await readdir(registryDir)).filter((name) => /^\d+$/.test(name)).length).toBe(uids.length);
  });

  it("never gives one uid to two processes allocating (and reclaiming) at the same time", async () => {
    const processes = 3;
    const perProcess = 30;
    // Abandoned claims on the first uids, which every process then races to take back.
    const abandoned = Array.from({ length: 20 }, (_, i) => `gone${i}`);
    const crashedRoot = await root("crashed", abandoned);
    const crashed = new UidAllocator({ registryDir, rootDir: crashedRoot, base, range: 1000 });
    for (const id of abandoned) await crashed.allocate(id);
    await rm(crashedRoot, { recursive: true });
    const script = `
      import { mkdirSync } from "node:fs";
      import { UidAllocator } from ${JSON.stringify(ALLOCATOR_MODULE)};
      const [registryDir, rootDir] = process.argv.slice(1);
      const allocator = new UidAllocator({ registryDir, rootDir, base: ${base}, range: 1000 });
      const ids = Array.from({ length: ${perProcess} }, (_, i) => "s" + i);
      for (const id of ids) mkdirSync(rootDir + "/" + id, { recursive: true });
      const uids = await Promise.all(ids.map((id) => allocator.allocate(id)));
      process.stdout.write(JSON.stringify(uids));
    `;
    const outputs = await Promise.all(
      Array.from({ length: processes }, (_, i) =>
        run(process.execPath, [
          "--import",
          "tsx",
          "--input-type=module",
          "-e",
          script,
          registryDir,
          join(scratch, `root${i}`),
        ]),
      ),
    );
    const uids = outputs.flatMap(({ stdout }) => JSON.parse(stdout) as number[]);
    expect(uids.length).toBe(processes * perProcess);
    expect(new Set(uids).size).toBe(uids.length);
    // Every abandoned uid was taken back, by exactly one of them.
    expect(uids).toEqual(expect.arrayContaining(abandoned.map((_, i) => base + 1 + i)));
  });

  it("takes back a claim whose root or sandbox directory is gone, and never a live one", async () => {
    const live = new UidAllocator({ registryDir, rootDir: await root("live", ["kept"]), base, range: 10 });
    expect(await live.allocate("kept")).toBe(base + 1);
    const crashedRoot = await root("crashed", ["lost"]);
    const crashed = new UidAllocator({ registryDir, rootDir: crashedRoot, base, range: 10 });
    expect(await crashed.allocate("lost")).toBe(base + 2);
    const gone = await root("gone", ["vanished"]);
    const half = new UidAllocator({ registryDir, rootDir: gone, base, range: 10 });
    expect(await half.allocate("vanished")).toBe(base + 3);
    // Crashes: a whole root deleted, and a sandbox directory removed without its release.
    await rm(crashedRoot, { recursive: true });
    await rm(join(gone, "vanished"), { recursive: true });

    const next = new UidAllocator({
      registryDir,
      rootDir: await root("next", ["n1", "n2", "n3"]),
      base,
      range: 10,
    });
    expect(await next.allocate("n1")).toBe(base + 2);
    expect(await next.allocate("n2")).toBe(base + 3);
    expect(await next.allocate("n3")).toBe(base + 4);
    const claim = JSON.parse(await readFile(join(registryDir, String(base + 1)), "utf8"));
    expect(claim).toMatchObject({ rootDir: join(scratch, "live"), sandboxId: "kept" });
  });

  it("takes back a claim whose sandbox id now belongs to another uid (meta.json says so)", async () => {
    const dir = await root("reused", ["same"]);
    const first = new UidAllocator({ registryDir, rootDir: dir, base, range: 10 });
    expect(await first.allocate("same")).toBe(base + 1);
    // A crash left the claim; the id was created again later and got another uid.
    await writeFile(join(dir, "same", "meta.json"), JSON.stringify({ hostUid: base + 7 }));
    const second = new UidAllocator({ registryDir, rootDir: await root("other", ["o"]), base, range: 10 });
    expect(await second.allocate("o")).toBe(base + 1);
  });

  it("release removes only this sandbox's own claim", async () => {
    const dir = await root("owner", ["mine", "other"]);
    const allocator = new UidAllocator({ registryDir, rootDir: dir, base, range: 10 });
    const uid = await allocator.allocate("mine");
    await allocator.release(uid, "other");
    expect(await readdir(registryDir)).toContain(String(uid));
    await allocator.release(uid, "mine");
    expect(await readdir(registryDir)).not.toContain(String(uid));
  });

  it("says limit_exceeded when every uid of the range is in use", async () => {
    const allocator = new UidAllocator({
      registryDir,
      rootDir: await root("full", ["a", "b", "c"]),
      base,
      range: 2,
    });
    await allocator.allocate("a");
    await allocator.allocate("b");
    await expect(allocator.allocate("c")).rejects.toMatchObject({ code: "limit_exceeded" });
  });
});

describe("host uids across namespace drivers (real sandboxes)", () => {
  let scratch: string;
  let registryDir: string;
  const cgroupName = privateCgroupName();
  const hostUidBase = privateUidBase();
  const drivers: NamespaceDriver[] = [];
  const spec = (name: string): SandboxSpec => ({
    id: `uids-${name}-${Math.random().toString(36).slice(2, 8)}`,
    limits: { cpu: 1, memoryMb: 128, diskMb: 16, pidsMax: 64 },
    network: "none",
    env: {},
  });
  const driverOn = async (name: string): Promise<NamespaceDriver> => {
    const rootDir = join(scratch, name);
    const driver = new NamespaceDriver({
      rootDir,
      cgroupName,
      hostUidBase,
      hostUidCount: 1000,
      hostUidRegistryDir: registryDir,
    });
    drivers.push(driver);
    return driver;
  };
  const uidOf = (handle: SandboxHandle): unknown => handle.data.hostUid;

  beforeAll(async () => {
    scratch = await mkdtemp(join(tmpdir(), "polydev-uid-drivers-"));
    registryDir = join(scratch, "registry");
  });
  afterAll(async () => {
    for (const driver of drivers) {
      for (const sandbox of await driver.list()) await driver.destroy(sandbox.handle).catch(() => undefined);
    }
    await rm(scratch, { recursive: true, force: true });
    await removeCgroupParent(cgroupName);
  });

  it("two drivers on different roots with the same uid base create at once and never share a uid", async () => {
    const a = await driverOn("a");
    const b = await driverOn("b");
    const created = await Promise.all(
      Array.from({ length: 6 }, (_, i) => [
        a.create(spec(`a${i}`)).then((handle) => ({ driver: a, handle })),
        b.create(spec(`b${i}`)).then((handle) => ({ driver: b, handle })),
      ]).flat(),
    );
    try {
      const uids = created.map(({ handle }) => uidOf(handle));
      expect(new Set(uids).size).toBe(created.length);
    } finally {
      await Promise.all(created.map(({ driver, handle }) => driver.destroy(handle)));
    }
  });

  it("a crashed driver's uid is taken back once its root is gone; a live sandbox's is not", async () => {
    const live = await driverOn("live");
    const kept = await live.create(spec("kept"));
    try {
      const crashedRoot = join(scratch, "crashed");
      const crashed = await driverOn("crashed");
      const lost = await crashed.create(spec("lost"));
      const lostUid = uidOf(lost);
      // A crash after the sandbox's processes died but before its uid was released: the claim
      // stays behind, and the data directory is deleted by hand.
      const claimFile = join(registryDir, String(lostUid));
      const claim = await readFile(claimFile, "utf8");
      await crashed.destroy(lost);
      await writeFile(claimFile, claim);
      await rm(crashedRoot, { recursive: true, force: true });

      const next = await driverOn("next");
      const handle = await next.create(spec("next"));
      try {
        expect(uidOf(handle)).not.toBe(uidOf(kept));
        expect(uidOf(handle)).toBe(lostUid);
        expect(await live.isAlive(kept)).toBe(true);
      } finally {
        await next.destroy(handle);
      }
    } finally {
      await live.destroy(kept);
    }
  });
});
