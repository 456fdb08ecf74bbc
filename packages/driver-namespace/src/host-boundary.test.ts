/**
 * The host side of a sandbox's boundary: what its processes may not do to the kernel, and what
 * the host processes that serve it (the exec server's binary, slirp4netns) hold.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, lstatSync, openSync, readdirSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { SandboxSpec } from "@polydev/core";
import { runCommand } from "@polydev/core/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NamespaceDriver } from "./namespace-driver.js";
import { privateCgroupName, privateUidBase, removeCgroupParent } from "./testing/private-host.js";

/**
 * Where the child gets the inherited descriptor: Node marks the low descriptors it finds at
 * start-up close-on-exec (up to 18 here), and one there would never reach its children anyway.
 */
const INHERITED_FD = 40;

/** Runs `script` (an ES module) in a new Node process whose fd INHERITED_FD is `inheritedFd`. */
function runWithInheritedFd(script: string, args: string[], inheritedFd: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const ignored = Array.from({ length: INHERITED_FD - 3 }, () => "ignore" as const);
    const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script, ...args], {
      stdio: ["ignore", "pipe", "inherit", ...ignored, inheritedFd],
    });
    let stdout = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      stdout += chunk.toString("utf8");
    });
    child.once("error", reject);
    child.once("close", (code) => (code === 0 ? resolve(stdout) : reject(new Error(`exited ${code}`))));
  });
}
const DRIVER_MODULE = fileURLToPath(new URL("./namespace-driver.ts", import.meta.url));
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

  it("slirp4netns gets no inherited descriptor, an empty environment and a capped console", async () => {
    // The server's own descriptors without close-on-exec (inherited from whoever started it, a
    // terminal master) are what could leak: run the driver in a process that has one.
    const marker = join(scratch, "inherited-marker");
    const script = `
      import { readdirSync, readlinkSync, readFileSync } from "node:fs";
      import { NamespaceDriver } from ${JSON.stringify(DRIVER_MODULE)};
      const [rootDir, cgroupName, base] = process.argv.slice(1);
      const driver = new NamespaceDriver({ rootDir, cgroupName, hostUidBase: Number(base), hostUidCount: 1000 });
      const handle = await driver.create({
        id: "slirp-fds",
        limits: { cpu: 1, memoryMb: 128, diskMb: 16, pidsMax: 64 },
        network: "egress",
        env: { POLYDEV_TEST_SECRET: "must-not-reach-the-host" },
      });
      try {
        // The premise: this process (the "server") holds the descriptor, inheritable.
        const flags = /^flags:\\s+(\\d+)$/m.exec(readFileSync("/proc/self/fdinfo/${INHERITED_FD}", "utf8"))[1];
        const pid = handle.data.slirpPid;
        const fds = {};
        for (const fd of readdirSync("/proc/" + pid + "/fd")) {
          try { fds[fd] = readlinkSync("/proc/" + pid + "/fd/" + fd); } catch {}
        }
        process.stdout.write(JSON.stringify({
          inherited: readlinkSync("/proc/self/fd/${INHERITED_FD}"),
          inheritedCloseOnExec: (parseInt(flags, 8) & 0o2000000) !== 0,
          fds,
          environ: readFileSync("/proc/" + pid + "/environ", "utf8"),
          limits: readFileSync("/proc/" + pid + "/limits", "utf8"),
          status: readFileSync("/proc/" + pid + "/status", "utf8"),
        }));
      } finally {
        await driver.destroy(handle);
      }
    `;
    writeFileSync(marker, "the server's inherited descriptor\n");
    const markerFd = openSync(marker, "r");
    let stdout: string;
    try {
      stdout = await runWithInheritedFd(
        script,
        [join(scratch, "slirp-root"), cgroupName, String(hostUidBase + 500)],
        markerFd,
      );
    } finally {
      closeSync(markerFd);
    }
    const report = JSON.parse(stdout) as {
      inherited: string;
      inheritedCloseOnExec: boolean;
      fds: Record<string, string>;
      environ: string;
      limits: string;
      status: string;
    };
    expect(report).toMatchObject({ inherited: marker, inheritedCloseOnExec: false });
    expect(Object.values(report.fds)).not.toContain(marker);
    for (const [fd, target] of Object.entries(report.fds)) {
      if (Number(fd) <= 2) continue;
      // slirp4netns's own: the tap device, its sockets, epoll/event descriptors. It runs in a
      // private mount namespace whose root it pivots into (@polydev/egress slirp.ts), so the host
      // may see its tap device's path as "/net/tun".
      expect(target, `fd ${fd}`).toMatch(/^(socket:|anon_inode:|(\/dev)?\/net\/tun$)/);
    }
    expect(report.environ).toBe("");
    expect(report.limits).toMatch(/^Max file size\s+1048576\s+1048576\s+bytes/m);
    // SIGXFSZ (25) ignored: a write past the cap fails instead of killing it.
    const ignored = BigInt(`0x${/^SigIgn:\s+([0-9a-f]+)$/m.exec(report.status)?.[1] ?? "0"}`);
    expect((ignored >> 24n) & 1n).toBe(1n);
  });
});
