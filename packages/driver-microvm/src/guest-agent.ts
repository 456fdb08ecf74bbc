/**
 * The in-guest agent of a microVM, bundled into one file and run by the toolbox's node as the
 * guest's root from the initramfs (outside the sandbox's root file system):
 *
 *   node agent.mjs <virtio port device>
 *
 * It speaks the link protocol (link-protocol.ts) on the one virtio-serial port: each channel
 * the host opens carries one independent agent connection. Commands run inside the sandbox
 * through guest-run (chroot into /sandbox, the sandbox's cgroup, the image's user) with exactly
 * the sandbox's environment: the image's env, the sandbox's env and HOME, nothing of this
 * process's own.
 */
import { execFile } from "node:child_process";
import { readFileSync, rmSync, statfsSync } from "node:fs";
import type { ControlMessage } from "@polydev/agent";
import { ChannelSocket, createAgentServer, createInProcessAgent, identityLauncher } from "@polydev/agent";
import type { LaunchRequest, SandboxLauncher } from "@polydev/core";
import { PolydevError } from "@polydev/core";
import { configureNic } from "./guest-nic.js";
import { openPortSessions } from "./guest-port.js";
import type { ActivateRequest, GuestStats } from "./link-protocol.js";
import { LINK_VERSION, parseActivate, parseFork, parseNetwork } from "./link-protocol.js";

const GUEST_RUN = "/polydev/guest-run";
const SANDBOX_ROOT = "/sandbox";
const STATE_DIR = "/run/polydev-agent-state";
const CGROUP = "/sys/fs/cgroup/sandbox";
const WARM_UP_STATE_DIR = "/run/polydev-warm-up";
const BUSYBOX = "/bin/busybox";

const portPath = process.argv[2];
if (portPath === undefined) {
  process.stderr.write("polydev microvm agent: usage: agent.mjs <port device>\n");
  process.exit(2);
}

interface Activation {
  request: ActivateRequest;
  server: ReturnType<typeof createAgentServer>;
}
let activation: Activation | undefined;
/** The activation under way or done; a failed one may be asked for again. */
let activating: Promise<Activation> | undefined;

/** The sandbox's own /etc/passwd (at most 64 KiB): a request's `user` by name or uid. */
function resolveUser(name: string): { uid: number; gid: number; home: string } {
  let text = "";
  try {
    text = readFileSync(`${SANDBOX_ROOT}/etc/passwd`)
      .subarray(0, 64 * 1024)
      .toString("utf8");
  } catch {
    // No passwd: only numeric users.
  }
  for (const line of text.split("\n")) {
    const fields = line.split(":");
    if (fields.length >= 6 && (fields[0] === name || fields[2] === name)) {
      return { uid: Number(fields[2]), gid: Number(fields[3]), home: fields[5] ?? "/" };
    }
  }
  if (/^[0-9]+$/.test(name)) return { uid: Number(name), gid: Number(name), home: "/" };
  throw new PolydevError("invalid_request", `the sandbox has no user ${name}`);
}

function makeServer(request: ActivateRequest): ReturnType<typeof createAgentServer> {
  const baseEnv: Record<string, string> = { ...request.env, HOME: request.home };
  const identity = identityLauncher({ home: request.home, stateDir: STATE_DIR, baseEnv });
  /** The request as guest-run takes it: control in four variables it removes before exec. */
  const inSandbox = (launch: LaunchRequest): LaunchRequest => {
    const user =
      launch.user === undefined ? { uid: request.uid, gid: request.gid } : resolveUser(launch.user);
    return {
      ...launch,
      // guest-run changes directory inside the sandbox; here "/" always exists.
      cwd: "/",
      env: {
        ...launch.env,
        POLYDEV_RUN_UID: String(user.uid),
        POLYDEV_RUN_GID: String(user.gid),
        POLYDEV_RUN_CWD: launch.cwd === "" ? request.home : launch.cwd,
        POLYDEV_RUN_ROOT: SANDBOX_ROOT,
      },
      argv: [GUEST_RUN, ...launch.argv],
    };
  };
  const launcher: SandboxLauncher = {
    ...identity,
    start: (launch) => identity.start(inSandbox(launch)),
    background: {
      start: (launch) => identity.background.start(inSandbox(launch)),
      list: () => identity.background.list(),
      get: (id) => identity.background.get(id),
      attach: (id, options) => identity.background.attach(id, options),
      signal: (id, signal) => identity.background.signal(id, signal),
    },
  };
  return createAgentServer(launcher);
}

function activate(request: ActivateRequest): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(
      GUEST_RUN,
      [
        "--activate",
        String(request.memoryBytes),
        String(request.pidsMax),
        String(request.cpuQuotaUs),
        String(request.tmpBytes),
        String(request.uid),
        String(request.gid),
        request.home,
        String(Math.floor(request.nowMs / 1000)),
        request.seed,
      ],
      { env: { PATH: "/bin:/sbin:/usr/bin:/usr/sbin" }, timeout: 30_000 },
      (error, _stdout, stderr) => {
        if (error) reject(new Error(`activation failed: ${stderr.slice(-2000) || error.message}`));
        else resolve();
      },
    );
  });
}

/** A fork's clock and random seed (guest-run --fork); a failure fails the fork. */
function reseed(nowMs: number, seed: string): Promise<void> {
  return new Promise((resolve, reject) =>
    execFile(
      GUEST_RUN,
      ["--fork", String(Math.floor(nowMs / 1000)), seed],
      { env: { PATH: "/bin:/sbin" }, timeout: 10_000 },
      (error, _stdout, stderr) => {
        if (error) reject(new Error(`fork: ${stderr.slice(-2000) || error.message}`));
        else resolve();
      },
    ),
  );
}

function startActivation(message: ControlMessage): Promise<Activation> {
  const started = (async () => {
    const request = parseActivate(message);
    await activate(request);
    activation = { request, server: makeServer(request) };
    return activation;
  })();
  started.catch(() => {
    if (activating === started) activating = undefined;
  });
  return started;
}

function run(file: string, args: string[]): Promise<void> {
  return new Promise((resolve) =>
    execFile(file, args, { env: { PATH: "/bin:/sbin" }, timeout: 10_000 }, () => resolve()),
  );
}

function readNumber(path: string, field?: string): number {
  try {
    const text = readFileSync(path, "utf8");
    if (field === undefined) return Number(text.trim()) || 0;
    const line = text.split("\n").find((entry) => entry.startsWith(`${field} `));
    return Number(line?.split(" ")[1] ?? 0) || 0;
  } catch {
    return 0;
  }
}

function stats(): GuestStats {
  let diskBytes = 0;
  try {
    const disk = statfsSync("/changes");
    diskBytes = (disk.blocks - disk.bfree) * disk.bsize;
  } catch {
    // Not activated: nothing written yet.
  }
  return {
    cpuUsageNs: readNumber(`${CGROUP}/cpu.stat`, "usage_usec") * 1000,
    memoryBytes: readNumber(`${CGROUP}/memory.current`),
    pids: readNumber(`${CGROUP}/pids.current`),
    diskBytes,
  };
}

/**
 * Under TCG the first run of any code path is slow (V8 compiles it, QEMU translates it): a
 * command with its output read, a terminal, and a child process as the activation starts one
 * run once here, in the initramfs, before the hello after which the boot snapshot is saved. Every
 * sandbox restored from it starts with that work done instead of paying it in its create and
 * first command. It is bounded, and a failure only costs the speed: logged, the agent carries on.
 */
const WARM_UP_LIMIT_MS = 30_000;

async function warmUp(): Promise<void> {
  const signal = AbortSignal.timeout(WARM_UP_LIMIT_MS);
  const connection = await createInProcessAgent(
    identityLauncher({ home: "/", stateDir: WARM_UP_STATE_DIR, baseEnv: { PATH: "/bin" } }),
  );
  try {
    const child = await connection.exec(
      { argv: [BUSYBOX, "echo", "warm"], timeoutMs: WARM_UP_LIMIT_MS },
      signal,
    );
    child.stderr.resume();
    for await (const _ of child.stdout) {
      // Read to the end, as a caller of the first command does.
    }
    await child.exited;
    const terminal = await connection.openPty({ argv: [BUSYBOX, "true"], cols: 80, rows: 24 }, signal);
    terminal.output.resume();
    const ended = (): void => terminal.kill("SIGKILL");
    signal.addEventListener("abort", ended, { once: true });
    await terminal.exited.finally(() => signal.removeEventListener("abort", ended));
    await run(BUSYBOX, ["true"]);
  } finally {
    await connection.close();
    rmSync(WARM_UP_STATE_DIR, { recursive: true, force: true });
  }
}

await warmUp().catch((error: unknown) => {
  process.stderr.write(`polydev microvm agent: warm-up failed: ${String(error)}\n`);
});

openPortSessions(portPath, {
  hello: () => ({ type: "hello", version: LINK_VERSION, activated: activation !== undefined }),
  onOpen: (channel, request) => {
    if (request.type !== "connection" || activating === undefined) {
      channel.close();
      return;
    }
    // A connection the host opened right behind its activate request is served once the
    // sandbox is ready (its hello then goes out at once), so the host's create does not pay a
    // connection's round trip after the activation's. Its frames wait in the socket meanwhile.
    const socket = new ChannelSocket(channel, "agent");
    // The activation as it is now, not as it was: a fork's restore replaced it since.
    activating.then(
      () => (activation ? activation.server.serve(socket) : channel.close()),
      () => channel.close(),
    );
  },
  onRequest: async (message) => {
    switch (message.type) {
      case "activate": {
        // Set before anything is awaited: an open that follows this request finds it.
        activating ??= startActivation(message);
        await activating;
        return { type: "activated" };
      }
      case "network":
        // After the activation, which mounted the sandbox's root (its /etc/resolv.conf).
        if (activation === undefined) throw new Error("network: not activated");
        await configureNic(parseNetwork(message), SANDBOX_ROOT);
        return { type: "network" };
      case "fork": {
        // A restore of a running sandbox's saved state: the previous host's connections are
        // gone (the link's reset); processes started from now on get the fork's environment.
        if (activation === undefined) throw new Error("fork: the sandbox was never activated");
        const request = parseFork(message);
        await reseed(request.nowMs, request.seed);
        const next = { ...activation.request, env: request.env };
        activation = { request: next, server: makeServer(next) };
        return { type: "forked" };
      }
      case "stats":
        return { type: "stats", ...stats() };
      case "clock":
        // A restored guest's clock is the snapshot's: the host's time, to the second.
        await run(GUEST_RUN, ["--clock", String(Math.floor(Number(message.nowMs) / 1000))]);
        return { type: "clock" };
      case "sync":
        // Before a hibernate's save: what the sandbox wrote reaches its disk file.
        await run("/bin/sync", []);
        return { type: "synced" };
      default:
        throw new Error(`unknown request ${message.type}`);
    }
  },
});
