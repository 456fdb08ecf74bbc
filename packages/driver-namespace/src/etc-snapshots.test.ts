import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, lstatSync, readdirSync } from "node:fs";
import {
  chmod,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rename,
  rm,
  symlink,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { SandboxHandle } from "@polydev/core";
import { runCommand, waitFor } from "@polydev/core/testing";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { EtcSnapshots } from "./etc-snapshots.js";
import { NamespaceDriver } from "./namespace-driver.js";
import { privateCgroupName, privateUidBase, removeCgroupParent } from "./testing/private-host.js";

/**
 * Host paths under /etc that a user other than their owner and group cannot read: files
 * without the read bit for others, directories without read and search for others, and
 * everything below such a directory.
 */
function hostPathsHiddenFromOthers(dir = "/etc", hiddenAbove = false): string[] {
  const hidden: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    const stat = lstatSync(path);
    if (stat.isSymbolicLink()) {
      if (hiddenAbove) hidden.push(path);
      continue;
    }
    const unreadable = stat.isDirectory() ? (stat.mode & 0o005) !== 0o005 : (stat.mode & 0o004) === 0;
    if (hiddenAbove || unreadable) hidden.push(path);
    if (stat.isDirectory()) {
      try {
        hidden.push(...hostPathsHiddenFromOthers(path, hiddenAbove || unreadable));
      } catch {
        // Unreadable even for root (a FUSE mount, say): nothing to compare.
      }
    }
  }
  return hidden;
}

/**
 * Replaces a host file by rename with an identical copy (content, mode, owner, times), as
 * apt-get or groupadd do with new content: the only change is the inode behind the name.
 */
async function replaceByRename(path: string): Promise<void> {
  const temporary = join("/etc", `.polydev-test-${randomBytes(6).toString("hex")}`);
  try {
    execFileSync("cp", ["-p", path, temporary]);
    await rename(temporary, path);
  } finally {
    await rm(temporary, { force: true });
  }
}

describe("the sandbox's own /etc (real sandboxes)", () => {
  let rootDir: string;
  let driver: NamespaceDriver;
  const cgroupName = privateCgroupName();
  let handle: SandboxHandle;

  beforeAll(async () => {
    rootDir = await mkdtemp(join(tmpdir(), "polydev-etc-"));
    driver = new NamespaceDriver({ rootDir, cgroupName, hostUidBase: privateUidBase(), hostUidCount: 1000 });
    handle = await driver.create({
      id: `etc-${randomBytes(4).toString("hex")}`,
      limits: { cpu: 1, memoryMb: 128, diskMb: 16, pidsMax: 64 },
      network: "none",
      env: {},
    });
  });
  afterAll(async () => {
    await driver.destroy(handle).catch(() => undefined);
    await rm(rootDir, { recursive: true, force: true });
    await removeCgroupParent(cgroupName);
  });

  const inSandbox = async (command: string | string[]): Promise<string> => {
    const connection = await driver.connect(handle);
    try {
      return (await runCommand(connection, command)).stdout;
    } finally {
      await connection.close();
    }
  };

  it("keeps its own /etc/group and never the host's /etc/gshadow when the host replaces them by rename", async () => {
    // Its own group file, and no gshadow with anything in it (a mask over the host's would be
    // empty; what counts is that the host's never shows through).
    const check = "grep -c '^user:x:1000:' /etc/group; test -s /etc/gshadow && echo host-gshadow; echo end";
    expect(await inSandbox(check)).toBe("1\nend\n");
    await replaceByRename("/etc/group");
    await replaceByRename("/etc/gshadow");
    expect(await inSandbox(check)).toBe("1\nend\n");
    // The host's own view is untouched by the test: its group file has no sandbox user.
    expect(await readFile("/etc/group", "utf8")).not.toMatch(/^user:x:1000:$/m);
  });

  it("holds no host file under /etc that other host users could not read", async () => {
    const hidden = hostPathsHiddenFromOthers();
    expect(hidden).toContain("/etc/shadow");
    const present = await inSandbox([
      "/bin/sh",
      "-c",
      'for path; do if [ -e "$path" ] || [ -L "$path" ]; then echo "$path"; fi; done',
      "sh",
      ...hidden,
    ]);
    expect(present).toBe("");
    // While what anyone may read is there: a sandbox is not missing its configuration.
    expect(await inSandbox("test -r /etc/os-release && echo readable")).toBe("readable\n");
  });
});

describe("EtcSnapshots (real files, a stand-in host /etc)", () => {
  let scratch: string;
  let hostEtc: string;
  let store: string;
  const errors: unknown[] = [];
  const snapshots = (rootDir: string): EtcSnapshots =>
    new EtcSnapshots({ store, rootDir, hostEtc, recheckMs: 0, onError: (error) => errors.push(error) });

  beforeEach(async () => {
    scratch = await mkdtemp(join(tmpdir(), "polydev-etc-snapshots-"));
    hostEtc = join(scratch, "etc");
    store = join(scratch, "store");
    await mkdir(join(hostEtc, "ssl", "private"), { recursive: true });
    await mkdir(join(hostEtc, "locked"), { mode: 0o750 });
    await mkdir(join(hostEtc, "ssh"));
    await writeFile(join(hostEtc, "os-release"), "ID=test\n", { mode: 0o644 });
    await writeFile(join(hostEtc, "group"), "host:x:1:\n", { mode: 0o644 });
    await writeFile(join(hostEtc, "shadow"), "root:secret\n", { mode: 0o644 });
    await writeFile(join(hostEtc, "private.conf"), "token\n", { mode: 0o640 });
    await writeFile(join(hostEtc, "locked", "inside"), "x\n", { mode: 0o644 });
    await writeFile(join(hostEtc, "ssl", "private", "key.pem"), "key\n", { mode: 0o600 });
    await writeFile(join(hostEtc, "ssh", "ssh_host_key.pub"), "pub\n", { mode: 0o644 });
    await writeFile(join(hostEtc, "setuid-tool"), "#!/bin/sh\n", { mode: 0o4755 });
    await symlink("../usr/lib/os-release", join(hostEtc, "os-release-link"));
    execFileSync("mkfifo", [join(hostEtc, "fifo")]);
    await chmod(join(hostEtc, "locked"), 0o750);
    errors.length = 0;
  });
  afterEach(async () => {
    await rm(scratch, { recursive: true, force: true });
  });

  it("copies what others may read, symlinks as symlinks, and writes Polydev's own files", async () => {
    const dir = await snapshots(join(scratch, "root")).forNetwork("egress");
    expect((await readdir(dir)).sort()).toEqual(
      [
        "group",
        "hostname",
        "hosts",
        "os-release",
        "os-release-link",
        "passwd",
        "resolv.conf",
        "setuid-tool",
        "ssl",
      ].sort(),
    );
    expect(await readdir(join(dir, "ssl"))).toEqual([]);
    expect(await readFile(join(dir, "os-release"), "utf8")).toBe("ID=test\n");
    expect(await readlink(join(dir, "os-release-link"))).toBe("../usr/lib/os-release");
    expect(await readFile(join(dir, "group"), "utf8")).toMatch(/^user:x:1000:$/m);
    expect(await readFile(join(dir, "resolv.conf"), "utf8")).toBe("nameserver 10.0.2.3\n");
    expect(lstatSync(join(dir, "setuid-tool")).mode & 0o7777).toBe(0o755);
    // Traversable (and readable) by a sandbox's uid, which bubblewrap runs as.
    expect(lstatSync(dir).mode & 0o777).toBe(0o755);
    expect(lstatSync(store).mode & 0o777).toBe(0o711);
    const none = await snapshots(join(scratch, "root")).forNetwork("none");
    expect(await readFile(join(none, "resolv.conf"), "utf8")).toBe("");
    // Any nameserver does for an allow-list sandbox (all its port-53 traffic is intercepted), but
    // glibc needs one to try.
    const allowlist = await snapshots(join(scratch, "root")).forNetwork("allowlist");
    expect(await readFile(join(allowlist, "resolv.conf"), "utf8")).toBe("nameserver 10.0.2.3\n");
  });

  it("builds a new copy, in a new directory, once the host's /etc changes; the old one stays until unused", async () => {
    const rootDir = join(scratch, "root");
    await mkdir(rootDir);
    const etc = snapshots(rootDir);
    const first = await etc.forNetwork("none");
    const before = lstatSync(join(first, "os-release")).ino;
    await writeFile(join(hostEtc, "os-release.new"), "ID=changed\n", { mode: 0o644 });
    await rename(join(hostEtc, "os-release.new"), join(hostEtc, "os-release"));
    let rebuilt = false;
    etc.recheckSoon(() => {
      rebuilt = true;
    });
    await waitFor("the rebuild", async () => (rebuilt ? true : undefined));
    const second = await etc.forNetwork("none");
    expect(second).not.toBe(first);
    expect(await readFile(join(second, "os-release"), "utf8")).toBe("ID=changed\n");
    // The first copy was never touched: a sandbox running on it sees what it started with.
    expect(await readFile(join(first, "os-release"), "utf8")).toBe("ID=test\n");
    expect(lstatSync(join(first, "os-release")).ino).toBe(before);
    await etc.collect((dir) => dir === first);
    expect(existsSync(first)).toBe(true);
    await etc.collect(() => false);
    expect(existsSync(first)).toBe(false);
    expect(existsSync(second)).toBe(true);
    expect(errors).toEqual([]);
  });

  it("shares one copy between driver roots and deletes it only when no existing root uses it", async () => {
    const rootA = join(scratch, "a");
    const rootB = join(scratch, "b");
    await mkdir(rootA);
    await mkdir(rootB);
    const a = snapshots(rootA);
    const dir = await a.forNetwork("none");
    expect(await snapshots(rootB).forNetwork("none")).toBe(dir);
    // Root B goes away (a deleted data directory); A still uses the copy.
    await rm(rootB, { recursive: true });
    await snapshots(join(scratch, "c")).collect(() => false);
    expect(existsSync(dir)).toBe(true);
    // Root A goes too: whoever collects next deletes the copy.
    await rm(rootA, { recursive: true });
    await snapshots(join(scratch, "c")).collect(() => false);
    expect(existsSync(dir)).toBe(false);
  });
});
