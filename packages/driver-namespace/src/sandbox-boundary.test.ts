/**
 * The host side of a sandbox's boundary: what its processes may not do to the kernel, and what
 * the host processes that serve it (the exec server's binary, slirp4netns) hold.
 */
import { randomBytes } from "node:crypto";
import { lstatSync, readdirSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { SandboxSpec } from "@polydev/core";
import { runCommand } from "@polydev/core/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NamespaceDriver } from "./namespace-driver.js";
import { privateCgroupName, privateUidBase, removeCgroupParent } from "./testing/private-host.js";

/** The drivers' default base for exec server sockets and the binary's host copy. */
const EXEC_BASE = "/run/polydev-exec";

describe("sandbox boundary (real sandboxes)", () => {
  let scratch: string;
  let driver: NamespaceDriver;
  const cgroupName = privateCgroupName();
  const hostUidBase = privateUidBase();
  const spec = (name: string, extra: Partial<SandboxSpec> = {}): SandboxSpec => ({
    id: `edge-${name}-${randomBytes(3).toString("hex")}`,
    limits: { cpu: 1, memoryMb: 128, diskMb: 16, pidsMax: 64 },
    network: "none",
    env: {},
    ...extra,
  });

  beforeAll(async () => {
    scratch = await mkdtemp(join(tmpdir(), "polydev-edge-"));
    driver = new NamespaceDriver({
      rootDir: join(scratch, "root"),
      cgroupName,
      hostUidBase,
      hostUidCount: 1000,
    });
  });
  afterAll(async () => {
    for (const sandbox of await driver.list()) await driver.destroy(sandbox.handle).catch(() => undefined);
    await rm(scratch, { recursive: true, force: true });
    await removeCgroupParent(cgroupName);
  });

  it("sandbox processes have no capabilities, no_new_privs, and cannot create user namespaces", async () => {
    const handle = await driver.create(spec("userns"));
    try {
      const connection = await driver.connect(handle);
      try {
        const status = (await runCommand(connection, "cat /proc/self/status")).stdout;
        for (const set of ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"]) {
          expect(status).toMatch(new RegExp(`^${set}:\\s+0000000000000000$`, "m"));
        }
        expect(status).toMatch(/^NoNewPrivs:\s+1$/m);
        // Both the plain kind and the kind that maps the caller to root inside.
        for (const command of ["unshare -U true", "unshare -Ur true", "unshare -Urm true"]) {
          const attempt = await runCommand(connection, command);
          expect(attempt.exitCode, command).not.toBe(0);
        }
      } finally {
        await connection.close();
      }
    } finally {
      await driver.destroy(handle);
    }
  });

  it("a running sandbox keeps the exec server binary it was started with when another driver prepares it", async () => {
    const handle = await driver.create(spec("init"));
    try {
      const mountOf = async (): Promise<string> => {
        const connection = await driver.connect(handle);
        try {
          const result = await runCommand(
            connection,
            "test -x /run/polydev-init && echo executable; stat -c %i /run/polydev-init; grep ' /run/polydev-init ' /proc/self/mountinfo",
          );
          return result.stdout;
        } finally {
          await connection.close();
        }
      };
      const before = await mountOf();
      expect(before).toMatch(/^executable\n/);
      const inode = Number(before.split("\n")[1]);
      const hostCopies = (): number[] =>
        readdirSync(EXEC_BASE)
          .filter((name) => name.startsWith("polydev-init"))
          .map((name) => lstatSync(join(EXEC_BASE, name)).ino);
      expect(hostCopies()).toContain(inode);
      // What a second server (or a restart) does on start-up.
      const other = new NamespaceDriver({
        rootDir: join(scratch, "other"),
        cgroupName,
        hostUidBase,
        hostUidCount: 1000,
      });
      await other.probe();
      const after = await mountOf();
      expect(after).toBe(before);
      // The host file behind the mount is the same one, not a replacement: the mount never
      // points at a deleted file, and the page cache is shared with new sandboxes.
      expect(after).not.toContain("//deleted");
      expect(hostCopies()).toContain(inode);
    } finally {
      await driver.destroy(handle);
    }
  });
});
