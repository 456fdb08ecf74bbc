/**
 * The sealed RAM copy every restore maps (guest-ram.ts): its pages are the file's, and a
 * process of another uid given it the way QEMU is (its fd 3, opened again read-write through
 * /proc/self/fd/3) can read it but change nothing of it. Escape probe for this host surface.
 */
import { spawn } from "node:child_process";
import { mkdtemp, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { GuestRam } from "./guest-ram.js";
import { RestoreSlots } from "./restore-slots.js";

const asRoot = process.getuid?.() === 0;
const VM_UID = 1_600_000_123;

function runAs(uid: number, fd: number, script: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn("/bin/sh", ["-c", script], {
      uid,
      gid: uid,
      env: { PATH: "/usr/bin:/bin" },
      stdio: ["ignore", "pipe", "pipe", fd],
    });
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => {
      out += chunk.toString("utf8");
    });
    child.stderr.on("data", (chunk: Buffer) => {
      out += chunk.toString("utf8");
    });
    child.once("close", (code) => resolve({ code, out }));
  });
}

describe.skipIf(!asRoot)("guest RAM's sealed copy (needs root: runs a process as a VM's uid)", () => {
  const dirs: string[] = [];
  const cacheDir = join(tmpdir(), `polydev-microvm-guest-ram-test-${process.pid}`);
  const ram = new GuestRam(cacheDir);
  afterAll(async () => {
    ram.close();
    await rm(cacheDir, { recursive: true, force: true });
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  it("holds the file's bytes, holes included, and refuses every write", async () => {
    const dir = await mkdtemp(join(tmpdir(), "polydev-guest-ram-"));
    dirs.push(dir);
    const file = join(dir, "ram");
    await writeFile(file, "guest pages\n", { mode: 0o400 });
    await truncate(file, 2 * 1024 * 1024);
    const fd = await ram.descriptor(file);
    expect(await ram.descriptor(file)).toBe(fd);

    const read = await runAs(VM_UID, fd, "head -c 12 /proc/self/fd/3; wc -c < /proc/self/fd/3");
    expect(read.out).toBe(`guest pages\n${2 * 1024 * 1024}\n`);

    // Opened read-write as QEMU does: the open works (a memfd's mode), every change fails.
    const write = await runAs(
      VM_UID,
      fd,
      "printf changed 1<>/proc/self/fd/3 && echo wrote; truncate -s 0 /proc/self/fd/3 && echo truncated; true",
    );
    expect(write.out).not.toContain("wrote");
    expect(write.out).not.toContain("truncated");
    const after = await runAs(VM_UID, fd, "head -c 12 /proc/self/fd/3; wc -c < /proc/self/fd/3");
    expect(after.out).toBe(`guest pages\n${2 * 1024 * 1024}\n`);
  });
});

describe("restore slots", () => {
  it("lets `size` through at once and the next in line when one is released", async () => {
    const slots = new RestoreSlots(2);
    const first = await slots.acquire();
    const second = await slots.acquire();
    let thirdIn = false;
    const third = slots.acquire().then((release) => {
      thirdIn = true;
      return release;
    });
    await Promise.resolve();
    expect(thirdIn).toBe(false);
    first();
    first(); // idempotent: does not let a fourth in
    const releaseThird = await third;
    expect(thirdIn).toBe(true);
    let fourthIn = false;
    const fourth = slots.acquire().then((release) => {
      fourthIn = true;
      return release;
    });
    await Promise.resolve();
    expect(fourthIn).toBe(false);
    second();
    (await fourth)();
    releaseThird();
  });

  it("an aborted wait leaves the line", async () => {
    const slots = new RestoreSlots(1);
    const held = await slots.acquire();
    const controller = new AbortController();
    const waiting = slots.acquire(controller.signal);
    controller.abort(new Error("gone"));
    await expect(waiting).rejects.toThrow("gone");
    held();
    const next = await slots.acquire();
    next();
  });
});
