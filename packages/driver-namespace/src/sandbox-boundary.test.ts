/**
 * What crosses the host/sandbox boundary, now that every process in a sandbox is started by its
 * init: no request value reaches a host process, no host descriptor reaches a sandbox process,
 * terminals and background processes live inside, and ports are forwarded without a route.
 * Real sandboxes, inspected from the host side where the sandbox itself could lie.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readlinkSync, statSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Duplex } from "node:stream";
import type { AgentConnection, SandboxHandle, SandboxSpec } from "@polydev/core";
import { runCommand, waitFor } from "@polydev/core/testing";
import type { IPty } from "node-pty";
import { spawn as spawnPty } from "node-pty";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NamespaceDriver } from "./namespace-driver.js";
import { removeCgroupParent } from "./testing/private-host.js";

const cgroupName = `polydev-test-boundary-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
const uniqueId = (label: string): string => `${label}-${Math.random().toString(36).slice(2, 8)}`;

function metaOf(handle: SandboxHandle): { hostUid: number; initPid: number; cgroupPaths: string[] } {
  const { hostUid, initPid, cgroupPaths } = handle.data;
  if (typeof hostUid !== "number" || typeof initPid !== "number" || !Array.isArray(cgroupPaths)) {
    throw new Error(`unexpected handle ${JSON.stringify(handle.data)}`);
  }
  return { hostUid, initPid, cgroupPaths: cgroupPaths.map(String) };
}

/** Host pids of every process in the sandbox's cgroup (the first controller's directory). */
function sandboxPids(handle: SandboxHandle): number[] {
  const [dir] = metaOf(handle).cgroupPaths;
  if (dir === undefined) return [];
  return readFileLines(join(dir, "cgroup.procs")).map(Number);
}

/** Sandbox processes other than bubblewrap, the init and its (idle) relays: the commands. */
function commandPids(handle: SandboxHandle): number[] {
  return sandboxPids(handle).filter((pid) => {
    const cmdline = readFileLines(`/proc/${pid}/cmdline`).join("\n");
    return (
      cmdline.length > 0 && !cmdline.startsWith("/run/polydev-init") && !cmdline.startsWith("/usr/bin/bwrap")
    );
  });
}

function readFileLines(path: string): string[] {
  try {
    return execFileSync("cat", [path], { encoding: "utf8" }).split("\n").filter(Boolean);
  } catch {
    return [];
  }
}

interface OpenDescriptor {
  pid: number;
  fd: string;
  target: string;
  dev: number;
  rdev: number;
  ino: number;
}

/** Every descriptor of every sandbox process, as host root sees it (the sandbox cannot hide them). */
function descriptorsOf(pids: number[]): OpenDescriptor[] {
  const found: OpenDescriptor[] = [];
  for (const pid of pids) {
    let fds: string[] = [];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
        const stat = statSync(`/proc/${pid}/fd/${fd}`);
        found.push({ pid, fd, target, dev: stat.dev, rdev: stat.rdev, ino: stat.ino });
      } catch {
        // gone meanwhile
      }
    }
  }
  return found;
}

async function readAll(stream: Duplex | NodeJS.ReadableStream): Promise<string> {
  let text = "";
  for await (const chunk of stream) text += String(chunk);
  return text;
}

describe("the namespace sandbox boundary", () => {
  let rootDir: string;
  let execRoot: string;
  let driver: NamespaceDriver;
  let hostTerminal: IPty;
  const handles: SandboxHandle[] = [];
  const connections: AgentConnection[] = [];

  const sandbox = async (
    spec: Partial<SandboxSpec> = {},
  ): Promise<{ handle: SandboxHandle; agent: AgentConnection }> => {
    const handle = await driver.create({
      id: uniqueId("bnd"),
      limits: { cpu: 1, memoryMb: 256, diskMb: 64, pidsMax: 128 },
      network: "none",
      env: {},
      ...spec,
    });
    handles.push(handle);
    const agent = await driver.connect(handle);
    connections.push(agent);
    return { handle, agent };
  };

  beforeAll(async () => {
    // A terminal master in the server process, not close-on-exec (node-pty's are not): it must
    // still never reach a sandbox created afterwards.
    hostTerminal = spawnPty("/bin/sh", ["-c", "sleep 600"], { cols: 80, rows: 24 });
    rootDir = await mkdtemp(join(tmpdir(), "polydev-boundary-"));
    // Its own exec directory base: other drivers on this host (other test files, other
    // versions) must not swap the init binary under it.
    execRoot = `/run/polydev-exec-test-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
    driver = new NamespaceDriver({ rootDir, cgroupName, execSocketRoot: execRoot });
  });
  afterAll(async () => {
    hostTerminal?.kill();
    for (const connection of connections) await connection.close().catch(() => undefined);
    for (const handle of handles) await driver.destroy(handle).catch(() => undefined);
    await rm(rootDir, { recursive: true, force: true });
    await rm(execRoot, { recursive: true, force: true });
    await removeCgroupParent(cgroupName);
  });

  it("hands no host descriptor to any sandbox process: init, relays, commands, terminals", async () => {
    const { handle, agent } = await sandbox();
    const term = await agent.openPty({ cols: 80, rows: 24 });
    const background = await agent.startBackground({ argv: ["sleep", "60"] });
    const running = await agent.exec({ argv: ["sleep", "60"] });
    await waitFor("the sandbox's processes", async () =>
      sandboxPids(handle).length >= 5 ? true : undefined,
    );

    const hostPts = statSync("/dev/pts").dev;
    const hostPtmx = statSync("/dev/ptmx");
    const consoleLog = statSync(join(rootDir, handle.sandboxId, "console.log"));
    const leaks = descriptorsOf(sandboxPids(handle)).filter(
      (d) =>
        d.dev === hostPts ||
        (d.dev === hostPtmx.dev && d.rdev === hostPtmx.rdev) ||
        (d.dev === consoleLog.dev && d.ino === consoleLog.ino) ||
        d.target.startsWith(rootDir),
    );
    // bubblewrap itself (outside the sandbox's pid namespace, on the host) writes its own
    // errors to the console log; it is not a sandbox process.
    const { initPid } = metaOf(handle);
    const bwrapPid = Number(/^PPid:\s+(\d+)/m.exec(await readFile(`/proc/${initPid}/status`, "utf8"))?.[1]);
    expect(leaks.filter((d) => d.pid !== bwrapPid)).toEqual([]);
    // The init holds nothing but its listening socket, its connections and /dev/null.
    const initFds = descriptorsOf([initPid]);
    expect(initFds.every((d) => d.target === "/dev/null" || d.target.startsWith("socket:"))).toBe(true);

    running.kill("SIGKILL");
    await running.exited;
    await agent.signalBackground(background.id, "SIGKILL");
    term.kill("SIGKILL");
  });

  it("never runs a request's environment, argv or cwd in a host process", async () => {
    const markerDir = await mkdtemp(join(tmpdir(), "polydev-preload-"));
    const marker = join(markerDir, "loaded");
    const source = join(markerDir, "preload.c");
    const library = join(markerDir, "preload.so");
    await writeFile(
      source,
      `#include <stdio.h>\n#include <unistd.h>\n__attribute__((constructor)) static void hit(void) {\n` +
        `  FILE *f = fopen("${marker}", "a"); if (f) { fprintf(f, "uid=%d pid=%d\\n", (int)getuid(), (int)getpid()); fclose(f); }\n}\n`,
    );
    execFileSync("cc", ["-shared", "-fPIC", "-o", library, source]);
    execFileSync("chmod", ["-R", "a+rx", markerDir]);
    const hostile = {
      LD_PRELOAD: library,
      LD_LIBRARY_PATH: markerDir,
      BASH_ENV: join(markerDir, "env.sh"),
      ENV: join(markerDir, "env.sh"),
      PATH: `${markerDir}:/usr/bin:/bin`,
    };
    await writeFile(join(markerDir, "env.sh"), `echo "uid=$(id -u) env" >> ${marker}\n`, { mode: 0o755 });
    try {
      const { agent } = await sandbox({ env: hostile });
      await runCommand(agent, "true", { env: hostile, cwd: "/" });
      const term = await agent.openPty({ cols: 80, rows: 24, env: hostile });
      term.write("exit\n");
      await term.exited.catch(() => undefined);
      const started = await agent.startBackground({ argv: ["true"], env: hostile, cwd: "/" });
      await waitFor("the background process to end", async () =>
        (await agent.getBackground(started.id)).state === "exited" ? true : undefined,
      );
      await agent.files.write("f.txt", (await import("node:stream")).Readable.from([Buffer.from("x")]));
      await agent.files.list(".");
      // The host path of the library does not exist inside the sandbox, so nothing loads it
      // there; any line in the marker file was written by a host process.
      expect(existsSync(marker) ? await readFile(marker, "utf8") : "").toBe("");
    } finally {
      await rm(markerDir, { recursive: true, force: true });
    }
  });

  it("runs a terminal on the sandbox's own devpts, resizes it, and hangs it up when abandoned", async () => {
    const { handle, agent } = await sandbox();
    const term = await agent.openPty({ cols: 100, rows: 30 });
    let screen = "";
    term.output.on("data", (chunk: Buffer) => {
      screen += chunk.toString();
    });
    term.write("tty; stty size\n");
    await waitFor("the terminal's answer", async () => (/30 100/.test(screen) ? true : undefined));
    expect(screen).toMatch(/\/dev\/pts\/\d+/);
    term.resize(120, 40);
    term.write("stty size\n");
    await waitFor("the new size", async () => (/40 120/.test(screen) ? true : undefined));
    // Its terminal belongs to the sandbox's devpts, not the host's.
    const hostPts = statSync("/dev/pts").dev;
    const shellFds = descriptorsOf(sandboxPids(handle)).filter((d) => d.target.startsWith("/dev/pts/"));
    expect(shellFds.length).toBeGreaterThan(0);
    expect(shellFds.every((d) => d.dev !== hostPts)).toBe(true);

    const before = commandPids(handle).length;
    expect(before).toBeGreaterThan(0);
    term.write("sleep 300\n");
    await waitFor("the sleep", async () => (commandPids(handle).length > before ? true : undefined));
    // Closing the connection hangs the terminal up: its shell and job go away.
    const agentOnly = connections.indexOf(agent);
    await agent.close();
    connections.splice(agentOnly, 1);
    await waitFor("the terminal's processes to end", async () =>
      commandPids(handle).length === 0 ? true : undefined,
    );
  });

  it("keeps background output inside the sandbox, capped, and finds it again from a new connection", async () => {
    const { handle, agent } = await sandbox({ limits: { cpu: 1, memoryMb: 256, diskMb: 16, pidsMax: 128 } });
    const before = execFileSync("du", ["-sb", join(rootDir, handle.sandboxId)], { encoding: "utf8" });
    const flood = await agent.startBackground({
      argv: ["/bin/sh", "-c", "head -c 100000000 /dev/zero; echo done >&2"],
    });
    await waitFor(
      "the flood to end",
      async () => ((await agent.getBackground(flood.id)).state === "exited" ? true : undefined),
      60_000,
    );
    const info = await agent.getBackground(flood.id);
    expect(info).toMatchObject({ state: "exited", exitCode: 0, signal: null });
    // Capped at 16 MiB plus a note saying so; nothing of it on the host.
    expect(info.outputBytes).toBeGreaterThan(16 * 1024 * 1024);
    expect(info.outputBytes).toBeLessThan(16 * 1024 * 1024 + 1024);
    const after = execFileSync("du", ["-sb", join(rootDir, handle.sandboxId)], { encoding: "utf8" });
    expect(Number(after.split("\t")[0])).toBeLessThan(Number(before.split("\t")[0]) + 64 * 1024);
    const tail = await readAll(
      await agent.attachBackground(flood.id, { fromOffset: 16 * 1024 * 1024, follow: false }),
    );
    expect(tail).toContain("output reached its limit");

    // A second connection (a restarted server) lists, follows and signals what the first started.
    const sleeper = await agent.startBackground({ argv: ["/bin/sh", "-c", "echo up; exec sleep 300"] });
    const fresh = await driver.connect(handle);
    connections.push(fresh);
    expect((await fresh.listBackground()).map((p) => p.id)).toEqual([flood.id, sleeper.id]);
    const following = fresh.attachBackground(sleeper.id, { follow: true }).then(readAll);
    await fresh.signalBackground(sleeper.id, "SIGTERM");
    expect(await following).toBe("up\n");
    expect(await fresh.getBackground(sleeper.id)).toMatchObject({
      state: "exited",
      exitCode: null,
      signal: "SIGTERM",
    });
    await expect(fresh.signalBackground(sleeper.id, "SIGTERM")).rejects.toMatchObject({
      code: "process_not_running",
    });
    await expect(fresh.getBackground("proc_000000000000")).rejects.toMatchObject({ code: "not_found" });
  }, 90_000);

  it("forwards ports both ways with no network: into the sandbox, and out of it to the host", async () => {
    const { agent } = await sandbox();
    // In: a server inside, reached from the host through the agent channel.
    const serving = await agent.exec({
      argv: [
        "python3",
        "-c",
        "import socket\ns=socket.socket(); s.bind(('127.0.0.1',8123)); s.listen(); print('up', flush=True)\n" +
          "c,_=s.accept(); d=c.recv(100); c.sendall(b'echo:'+d); c.close()",
      ],
    });
    serving.stdin.end();
    await new Promise<void>((resolve) => serving.stdout.once("data", () => resolve()));
    const inward = await agent.forwardIn(8123);
    inward.end("hello");
    expect(await readAll(inward)).toBe("echo:hello");
    await expect(agent.forwardIn(8124)).rejects.toMatchObject({ code: "port_unreachable" });

    // Out: the sandbox connects to its own loopback port and the host answers.
    const forwarded = await agent.forwardOut(9411, (socket) => {
      socket.once("data", (data) => socket.end(`host saw ${String(data)}`));
    });
    const reply = await runCommand(
      agent,
      "python3 -c \"import socket\ns=socket.create_connection(('127.0.0.1',9411)); s.sendall(b'ping'); print(s.recv(100).decode())\"",
    );
    expect(reply.stdout).toBe("host saw ping\n");
    forwarded.close();
    await forwarded.closed;
    const refused = await runCommand(
      agent,
      "python3 -c \"import socket\ntry:\n socket.create_connection(('127.0.0.1',9411)); print('open')\nexcept OSError: print('refused')\"",
    );
    expect(refused.stdout).toBe("refused\n");
  });

  it("forwards out of one sandbox only: another sandbox cannot reach the first one's forward socket", async () => {
    const first = await sandbox();
    const second = await sandbox();
    let reached = 0;
    const forwarded = await first.agent.forwardOut(9412, (socket) => {
      reached++;
      socket.end();
    });
    const probe = await runCommand(
      second.agent,
      "ls /run/polydev; python3 -c \"import socket\ntry:\n socket.create_connection(('127.0.0.1',9412)); print('open')\nexcept OSError: print('refused')\"",
    );
    expect(probe.stdout).toBe("exec.sock\nrefused\n");
    expect(reached).toBe(0);
    forwarded.close();
  });

  it("reports home usage without resolving the sandbox's symlinks on the host", async () => {
    // A host-only tmpfs with a recognisable 5 MiB in it: following the sandbox's symlink from the
    // host would report that instead of the sandbox's own home.
    const probeDir = await mkdtemp(join(tmpdir(), "polydev-statfs-probe-"));
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=64m", "tmpfs", probeDir]);
    try {
      execFileSync("dd", ["if=/dev/zero", `of=${join(probeDir, "fill")}`, "bs=1M", "count=5", "status=none"]);
      const { handle, agent } = await sandbox();
      await runCommand(agent, "head -c 1048576 /dev/zero > one-mib.bin");
      expect((await driver.stats(handle)).diskBytes).toBeGreaterThanOrEqual(1024 * 1024);
      const swapped = await runCommand(
        agent,
        `cd / && mv /home /home2 && mkdir /home && ln -s ${probeDir} /home/user && echo swapped`,
      );
      expect(swapped.stdout).toBe("swapped\n");
      // Never the host's 5 MiB: the sandbox can only fool its own figure (it then keeps the
      // last one it gave).
      expect((await driver.stats(handle)).diskBytes).toBeLessThan(4 * 1024 * 1024);
    } finally {
      execFileSync("umount", [probeDir]);
      await rm(probeDir, { recursive: true, force: true });
    }
  });

  it("hardens the init: not dumpable, no_new_privs, seccomp filter on every process", async () => {
    const { handle, agent } = await sandbox();
    const status = await readFile(`/proc/${metaOf(handle).initPid}/status`, "utf8");
    expect(status).toMatch(/^NoNewPrivs:\s+1$/m);
    expect(status).toMatch(/^Seccomp:\s+2$/m);
    const inside = await runCommand(
      agent,
      [
        "cat /proc/1/environ >/dev/null 2>&1 && echo environ-readable || echo environ-denied",
        "ls /proc/1/fd >/dev/null 2>&1 && echo fds-listed || echo fds-denied",
        "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status | tr -d '\\t'",
      ].join("; "),
    );
    expect(inside.stdout).toBe("environ-denied\nfds-denied\nNoNewPrivs:1\nSeccomp:2\n");
  });

  it("keeps the host's terminal master out of later sandboxes' reach as well", async () => {
    // (beforeAll opened one in this process; the first test's audit covered the sandbox side.)
    expect(hostTerminal.pid).toBeGreaterThan(0);
    const serverPtmx = readdirSync("/proc/self/fd").filter((fd) => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`) === "/dev/ptmx";
      } catch {
        return false;
      }
    });
    expect(serverPtmx.length).toBeGreaterThan(0);
    const { handle } = await sandbox();
    const hostPtmx = statSync("/dev/ptmx");
    const leaked = descriptorsOf(sandboxPids(handle)).filter(
      (d) => d.dev === hostPtmx.dev && d.rdev === hostPtmx.rdev,
    );
    expect(leaked).toEqual([]);
  });
});
