/**
 * The exec server (native/exec-server.c) in real sandboxes: through the driver's agent
 * connection, as the server uses it, and through the launcher's `start` directly where the test
 * needs to hold the output back.
 */
import { existsSync } from "node:fs";
import { mkdtemp, readdir, readFile, readlink, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import type { AgentConnection, SandboxHandle, SandboxLauncher } from "@polydev/core";
import { runCommand, waitFor } from "@polydev/core/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { namespaceLauncher, SANDBOX_HOME } from "./launcher.js";
import { DEFAULT_EXEC_SERVER_PATH, NamespaceDriver } from "./namespace-driver.js";
import { removeCgroupParent } from "./testing/private-host.js";

const cgroupName = `polydev-test-exec-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;

interface ExecMeta {
  hostUid: number;
  initPid: number;
  cgroupPaths: string[];
  execSocket: string;
}

function metaOf(handle: SandboxHandle): ExecMeta {
  const { hostUid, initPid, cgroupPaths, execSocket } = handle.data;
  if (
    typeof hostUid !== "number" ||
    typeof initPid !== "number" ||
    !Array.isArray(cgroupPaths) ||
    typeof execSocket !== "string"
  ) {
    throw new Error(`expected an exec server in ${JSON.stringify(handle.data)}`);
  }
  return { hostUid, initPid, cgroupPaths: cgroupPaths.map(String), execSocket };
}

/** Host pids of `uid` with their command lines and parents, from /proc. */
async function hostProcessesOfUid(uid: number): Promise<{ pid: number; ppid: number; cmdline: string }[]> {
  const found: { pid: number; ppid: number; cmdline: string }[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const status = await readFile(`/proc/${entry}/status`, "utf8").catch(() => "");
    const realUid = /^Uid:\s+(\d+)/m.exec(status)?.[1];
    if (realUid === undefined || Number(realUid) !== uid) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => "");
    found.push({
      pid: Number(entry),
      ppid: Number(/^PPid:\s+(\d+)/m.exec(status)?.[1] ?? 0),
      cmdline: cmdline.replaceAll("\0", " ").trim(),
    });
  }
  return found;
}

async function readCount(stream: Readable): Promise<number> {
  let bytes = 0;
  for await (const chunk of stream) bytes += (chunk as Buffer).length;
  return bytes;
}

async function readAllText(stream: Readable): Promise<string> {
  let text = "";
  for await (const chunk of stream) text += String(chunk);
  return text;
}

describe("exec server", () => {
  let rootDir: string;
  let driver: NamespaceDriver;
  let handle: SandboxHandle;
  let connection: AgentConnection;
  let launcher: SandboxLauncher;

  beforeAll(async () => {
    if (!existsSync(DEFAULT_EXEC_SERVER_PATH)) {
      throw new Error(`${DEFAULT_EXEC_SERVER_PATH} is missing: run scripts/ensure.sh to build it`);
    }
    rootDir = await mkdtemp(join(tmpdir(), "polydev-exec-"));
    const hostUidBase = 1_000_000 + Math.floor(Math.random() * 900) * 10_000;
    driver = new NamespaceDriver({ rootDir, cgroupName, hostUidBase, hostUidCount: 10_000 });
    handle = await driver.create({
      id: `exec-${Math.random().toString(36).slice(2, 8)}`,
      limits: { cpu: 1, memoryMb: 256, diskMb: 64, pidsMax: 128 },
      network: "none",
      env: { FROM_SPEC: "spec" },
    });
    connection = await driver.connect(handle);
    const meta = metaOf(handle);
    launcher = namespaceLauncher({
      execSocket: meta.execSocket,
      execDir: dirname(meta.execSocket),
      hostUid: meta.hostUid,
      env: {},
      network: "none",
    });
  });
  afterAll(async () => {
    await connection?.close();
    if (handle) await driver.destroy(handle);
    await rm(rootDir, { recursive: true, force: true });
    await removeCgroupParent(cgroupName);
  });

  const start = (argv: string[]) => launcher.start({ argv, cwd: SANDBOX_HOME, env: { ...launcher.baseEnv } });

  it("is the sandbox's init, and the commands it starts are its grandchildren, not the host's", async () => {
    const { initPid, hostUid } = metaOf(handle);
    expect(await readFile(`/proc/${initPid}/cmdline`, "utf8")).toContain("/run/polydev-init");
    const running = await connection.exec({ argv: ["sleep", "31.25"] });
    running.stdin.end();
    try {
      const command = await waitFor("the command to run", async () =>
        (await hostProcessesOfUid(hostUid)).find((p) => p.cmdline === "sleep 31.25"),
      );
      const relay = (await hostProcessesOfUid(hostUid)).find((p) => p.pid === command.ppid);
      expect(relay?.ppid).toBe(initPid);
    } finally {
      running.kill("SIGKILL");
      await running.exited;
    }
  });

  it("joined bubblewrap to the cgroups as the sandbox's uid, with root's groups dropped", async () => {
    const { hostUid, cgroupPaths } = metaOf(handle);
    const bwrapPid = handle.data.bwrapPid;
    const status = await readFile(`/proc/${String(bwrapPid)}/status`, "utf8");
    expect(/^Uid:\s+(\d+)\s+(\d+)\s+(\d+)/m.exec(status)?.slice(1)).toEqual([
      String(hostUid),
      String(hostUid),
      String(hostUid),
    ]);
    expect(/^Gid:\s+(\d+)/m.exec(status)?.[1]).toBe(String(hostUid));
    expect(/^Groups:(.*)$/m.exec(status)?.[1]?.trim()).toBe("");
    for (const dir of cgroupPaths) {
      const members = (await readFile(join(dir, "cgroup.procs"), "utf8")).split("\n").map(Number);
      expect(members).toContain(Number(bwrapPid));
    }
  });

  it("starts commands inside every namespace and cgroup of the sandbox", async () => {
    const { initPid, hostUid, cgroupPaths } = metaOf(handle);
    const kinds = ["pid", "mnt", "net", "user", "uts", "ipc", "cgroup"];
    const inside = await runCommand(
      connection,
      kinds.map((kind) => `readlink /proc/self/ns/${kind}`).join("; "),
    );
    const expected = await Promise.all(kinds.map((kind) => readlink(`/proc/${initPid}/ns/${kind}`)));
    expect(inside.stdout.trim().split("\n")).toEqual(expected);

    const running = await connection.exec({ argv: ["sleep", "31.5"] });
    running.stdin.end();
    try {
      const command = await waitFor("the command to run", async () =>
        (await hostProcessesOfUid(hostUid)).find((p) => p.cmdline === "sleep 31.5"),
      );
      for (const dir of cgroupPaths) {
        const members = (await readFile(join(dir, "cgroup.procs"), "utf8")).split("\n").map(Number);
        expect(members).toContain(command.pid);
      }
    } finally {
      running.kill("SIGKILL");
      await running.exited;
    }
  });

  it("streams a large output with back-pressure: a reader that stops holds the command", async () => {
    const marker = `${SANDBOX_HOME}/big-output-done`;
    const total = 32 * 1024 * 1024;
    const child = start(["/bin/sh", "-c", `head -c ${total} /dev/zero; touch ${marker}`]);
    child.stdin.end();
    // Nobody reads stdout yet: once the socket and pipe buffers are full the command must wait.
    await sleep(300);
    expect(child.stdout.readableLength).toBeLessThanOrEqual(child.stdout.readableHighWaterMark + 64 * 1024);
    expect((await runCommand(connection, `test -e ${marker}; echo $?`)).stdout).toBe("1\n");
    expect(await readCount(child.stdout)).toBe(total);
    expect(await child.exited).toEqual({ exitCode: 0, signal: null });
    expect((await runCommand(connection, `test -e ${marker}; echo $?`)).stdout).toBe("0\n");
  });

  it("feeds stdin (8 MiB) and reports stdout, stderr and exit codes", async () => {
    const input = Buffer.alloc(8 * 1024 * 1024, "z");
    const counting = await connection.exec({ argv: ["wc", "-c"] });
    counting.stdin.end(input);
    expect((await readAllText(counting.stdout)).trim()).toBe(String(input.length));

    const mixed = await runCommand(connection, "echo out; echo err >&2; echo $FROM_SPEC; exit 7");
    expect(mixed).toMatchObject({ stdout: "out\nspec\n", stderr: "err\n", exitCode: 7, signal: null });

    const selfKilled = await runCommand(connection, "kill -TERM $$");
    expect(selfKilled).toMatchObject({ exitCode: null, signal: "SIGTERM", timedOut: false });
  });

  it("passes signals to the command and SIGKILL ends it", async () => {
    const trapping = await connection.exec({
      argv: ["/bin/sh", "-c", "trap 'echo term; exit 9' TERM; echo ready; while :; do sleep 0.05; done"],
    });
    trapping.stdin.end();
    const lines: string[] = [];
    let signalled = false;
    const output = new Promise<void>((resolve) => {
      trapping.stdout.on("data", (chunk: Buffer) => {
        lines.push(chunk.toString());
        if (!signalled && lines.join("").includes("ready\n")) {
          signalled = true;
          trapping.kill("SIGTERM");
        }
      });
      trapping.stdout.on("end", () => resolve());
    });
    await output;
    expect(lines.join("")).toBe("ready\nterm\n");
    expect((await trapping.exited).exitCode).toBe(9);

    const killed = await connection.exec({ argv: ["sleep", "30"] });
    killed.stdin.end();
    killed.kill("SIGKILL");
    expect(await killed.exited).toMatchObject({ exitCode: null, signal: "SIGKILL", timedOut: false });
  });

  it("kills the whole tree at the timeout, also what left the process group", async () => {
    const { hostUid, initPid } = metaOf(handle);
    const result = await runCommand(
      connection,
      "setsid sleep 32.5 </dev/null >/dev/null 2>&1 & sleep 32.75 & echo started; wait",
      { timeoutMs: 500 },
    );
    expect(result).toMatchObject({ stdout: "started\n", timedOut: true, signal: "SIGKILL", exitCode: null });
    await waitFor("the timed-out command's children to be gone", async () => {
      const left = (await hostProcessesOfUid(hostUid)).filter((p) => p.cmdline.startsWith("sleep 32."));
      return left.length === 0 ? true : undefined;
    });
    // The sandbox itself carries on.
    expect(existsSync(`/proc/${initPid}`)).toBe(true);
    expect((await runCommand(connection, "echo alive")).stdout).toBe("alive\n");
  });

  it("answers a missing command or directory with a clean non-zero exit and a message", async () => {
    const missing = await runCommand(connection, ["polydev-no-such-command", "x"]);
    expect(missing.exitCode).toBe(127);
    expect(missing.stderr).toContain("polydev-no-such-command: command not found");
    const noDir = await runCommand(connection, ["pwd"], { cwd: "/no/such/dir" });
    expect(noDir.exitCode).toBe(127);
    expect(noDir.stderr).toContain("the working directory /no/such/dir does not exist");
    const notExecutable = await runCommand(connection, ["/etc/passwd"]);
    expect(notExecutable.exitCode).toBe(126);
  });

  it("serves one process after another on a kept connection, none leaking into the next", async () => {
    const ignored = Buffer.alloc(2 * 1024 * 1024, "x");
    for (let round = 0; round < 10; round++) {
      // Exits without reading 2 MiB of stdin: whatever of it is still on its way is dropped.
      const ignoring = await connection.exec({ argv: ["/bin/sh", "-c", `exit ${round}`] });
      ignoring.stdin.on("error", () => undefined);
      ignoring.stdin.end(ignored);
      expect((await ignoring.exited).exitCode).toBe(round);
      const echoing = await connection.exec({ argv: ["cat"] });
      echoing.stdin.end(`round ${round}`);
      expect(await readAllText(echoing.stdout)).toBe(`round ${round}`);
      expect((await echoing.exited).exitCode).toBe(0);
    }
    // Kept connections are bounded: bubblewrap, the init and at most two idle relays remain.
    const { hostUid } = metaOf(handle);
    await waitFor("idle relays to settle", async () =>
      (await hostProcessesOfUid(hostUid)).length <= 4 ? true : undefined,
    );
  });

  it("serves many execs at once", async () => {
    const results = await Promise.all(
      Array.from({ length: 60 }, (_, index) => runCommand(connection, ["echo", `n${index}`])),
    );
    expect(results.map((result) => result.stdout)).toEqual(
      Array.from({ length: 60 }, (_, index) => `n${index}\n`),
    );
    expect(results.every((result) => result.exitCode === 0)).toBe(true);
  });

  it("answers an exec at the process limit with a clean failure, and serves again once below it", async () => {
    const limited = await driver.create({
      id: `exec-pids-${Math.random().toString(36).slice(2, 8)}`,
      limits: { cpu: 1, memoryMb: 128, diskMb: 16, pidsMax: 12 },
      network: "none",
      env: {},
    });
    const limitedConnection = await driver.connect(limited);
    try {
      const filler = await limitedConnection.exec({
        // bash retries a failed fork where dash gives up, so the limit stays reached.
        argv: ["/bin/bash", "-c", "while :; do sleep 30 & done 2>/dev/null"],
      });
      filler.stdin.end();
      // Read from the cgroup directly: stats would itself ask the sandbox (and so use a process).
      const { cgroupPaths } = metaOf(limited);
      const pidsDir = cgroupPaths.find((dir) => dir.includes("/pids/")) ?? cgroupPaths[0];
      await waitFor("the sandbox to reach its process limit", async () =>
        Number(await readFile(join(pidsDir ?? "", "pids.current"), "utf8").catch(() => "0")) >= 12
          ? true
          : undefined,
      );
      const refused = await runCommand(limitedConnection, ["echo", "no room"]);
      expect(refused.exitCode).toBe(126);
      expect(refused.stderr).toContain("process limit");
      filler.kill("SIGKILL");
      await filler.exited;
      const served = await waitFor("an exec to succeed again", async () => {
        const result = await runCommand(limitedConnection, ["echo", "room again"]);
        return result.exitCode === 0 ? result : undefined;
      });
      expect(served.stdout).toBe("room again\n");
    } finally {
      await limitedConnection.close();
      await driver.destroy(limited);
    }
  });

  it("keeps its socket out of the sandbox's reach: the directory cannot be changed from inside", async () => {
    const attempt = await runCommand(
      connection,
      "rm -f /run/polydev/exec.sock; ln -s /etc/passwd /run/polydev/other; ls /run/polydev",
    );
    expect(attempt.stdout).toBe("exec.sock\n");
    expect(attempt.stderr).toContain("Permission denied");
    // Still served after the attempt.
    expect((await runCommand(connection, "echo still")).stdout).toBe("still\n");
  });
});

describe("without the exec server", () => {
  it("is unavailable and says how to build it, instead of entering sandboxes from the host", async () => {
    const rootDir = await mkdtemp(join(tmpdir(), "polydev-exec-none-"));
    const driver = new NamespaceDriver({
      rootDir,
      cgroupName,
      execServerPath: join(rootDir, "no-such-exec-server"),
    });
    try {
      await expect(driver.probe()).rejects.toMatchObject({
        code: "driver_unavailable",
        message: expect.stringContaining("scripts/ensure.sh"),
      });
      await expect(
        driver.create({
          id: `plain-${Math.random().toString(36).slice(2, 8)}`,
          limits: { cpu: 1, memoryMb: 256, diskMb: 64, pidsMax: 128 },
          network: "none",
          env: {},
        }),
      ).rejects.toMatchObject({ code: "driver_unavailable" });
    } finally {
      await rm(rootDir, { recursive: true, force: true });
    }
  });
});
