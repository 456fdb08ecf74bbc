/**
 * descriptors.* and host-processes.*: every descriptor inside is the sandbox's own, the init
 * cannot be attached to or robbed of its descriptors, no host environment leaks in, and host
 * processes can be neither seen nor touched.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createServer } from "node:net";
import { expect } from "vitest";
import type { EscapeProbe, EscapeProbeContext } from "./escape-probe-context.js";
import { HOST_SECRET_VARIABLE } from "./escape-probe-context.js";
import { probeProgram, SOCKET_PEERS_SCRIPT, SURVEY_SCRIPT, SYSCALLS_SCRIPT } from "./escape-probe-scripts.js";

interface Survey {
  self: number;
  checked: number;
  uninspectable: [number, string, string][];
  foreign: { pid: number; comm: string; entry: string; target: string; why: string }[];
  environ: { pid: number; comm: string; vars: string[] }[];
  ownFds: Record<string, string>;
}

type Calls = Record<string, { allowed: boolean; errno: string | null; taken?: string[] }>;

/** Variables a sandbox process may share with the host's (same name and value). */
const HARMLESS_SHARED = new Set([
  "PATH",
  "LANG",
  "LC_ALL",
  "LC_CTYPE",
  "TERM",
  "SHELL",
  "TZ",
  "SHLVL",
  "_",
  "PWD",
]);

/** Host variables found inside, as `NAME=value` (only those whose name and value both match). */
function hostVariablesIn(environ: Survey["environ"]): string[] {
  const host = new Map(Object.entries(process.env));
  const leaked = new Set<string>();
  for (const block of environ) {
    for (const pair of block.vars) {
      const cut = pair.indexOf("=");
      const name = pair.slice(0, cut);
      if (HARMLESS_SHARED.has(name)) continue;
      const hostValue = host.get(name);
      if (
        name === HOST_SECRET_VARIABLE ||
        name === "NODE_EXTRA_CA_CERTS" ||
        name.startsWith("VITEST") ||
        (hostValue !== undefined && hostValue.length > 0 && hostValue === pair.slice(cut + 1))
      ) {
        leaked.add(`${block.comm}(${block.pid}): ${name}`);
      }
    }
  }
  return [...leaked];
}

/** The probe's own descriptors beyond stdio, and every foreign one (pid 1's are judged apart). */
function expectOwnDescriptors(survey: Survey, how: string): void {
  expect(survey.checked, `the survey (${how}) inspected nothing`).toBeGreaterThan(0);
  const beyondStdio = Object.entries(survey.ownFds)
    .filter(([fd]) => Number(fd) > 2)
    .map(([fd, target]) => `${fd} -> ${target}`);
  const notOwn = survey.foreign.filter((entry) => entry.pid !== 1);
  expect(
    { beyondStdio, notOwn },
    `a process started by ${how}: descriptors beyond its stdio, and descriptors inside that are not the sandbox's own`,
  ).toEqual({ beyondStdio: [], notOwn: [] });
}

async function withHostSleeper<T>(use: (pid: number, marker: string) => Promise<T>): Promise<T> {
  // A duration no sandbox process would have, so its command line identifies it.
  const marker = `${86_000 + Math.floor(Math.random() * 300)}.${randomBytes(3).readUIntBE(0, 3)}`;
  const sleeper = spawn("sleep", [marker], { stdio: "ignore" });
  const pid = sleeper.pid;
  if (pid === undefined) throw new Error("could not start the host sleeper");
  try {
    return await use(pid, marker);
  } finally {
    sleeper.kill("SIGKILL");
  }
}

async function hostProcessState(pid: number): Promise<string> {
  const status = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "");
  return /^State:\s+(\S+)/m.exec(status)?.[1] ?? "gone";
}

function survey(context: EscapeProbeContext, name: "a" | "b", how: "exec" | "pty" | "background") {
  return async (): Promise<Survey> => {
    const { connection } = await context.sandbox(name);
    if (how === "exec") return context.python<Survey>(connection, SURVEY_SCRIPT);
    if (how === "pty") return context.pythonInPty<Survey>(connection, SURVEY_SCRIPT);
    return context.pythonInBackground<Survey>(connection, SURVEY_SCRIPT);
  };
}

export const descriptorProbes: EscapeProbe[] = [
  {
    id: "descriptors.exec",
    title: "an exec holds only its stdio, and every descriptor inside is the sandbox's own",
    async run(context) {
      expectOwnDescriptors(await survey(context, "a", "exec")(), "exec");
    },
  },
  {
    id: "descriptors.pty",
    title: "a terminal's process holds only its terminal, and nothing the host opened",
    async run(context) {
      expectOwnDescriptors(await survey(context, "a", "pty")(), "a terminal");
    },
  },
  {
    id: "descriptors.background",
    title: "a background process holds only its stdio, and nothing the host opened",
    async run(context) {
      expectOwnDescriptors(await survey(context, "a", "background")(), "a background process");
    },
  },
  {
    id: "descriptors.init",
    title: "the init holds no descriptor on a host file (a console log, a terminal, a socket)",
    async run(context) {
      const seen = await survey(context, "a", "exec")();
      expect(
        seen.foreign.filter((entry) => entry.pid === 1),
        "the init's descriptors that are not the sandbox's own",
      ).toEqual([]);
    },
  },
  {
    id: "descriptors.pidfd-getfd-init",
    title: "pidfd_getfd cannot take the init's descriptors",
    async run(context) {
      const { connection } = await context.sandbox("a");
      const calls = await context.python<Calls>(connection, SYSCALLS_SCRIPT, { calls: ["pidfd_getfd_init"] });
      expect(calls.pidfd_getfd_init?.taken ?? [], "descriptors taken from the init").toEqual([]);
    },
  },
  {
    id: "descriptors.ptrace-init",
    title: "ptrace and process_vm_readv on the init fail",
    async run(context) {
      const { connection } = await context.sandbox("a");
      const calls = await context.python<Calls>(connection, SYSCALLS_SCRIPT, {
        calls: ["ptrace_attach_init", "ptrace_seize_init", "process_vm_readv_init"],
      });
      for (const [name, result] of Object.entries(calls))
        expect(result.allowed, `${name} on pid 1`).toBe(false);
    },
  },
  {
    id: "descriptors.init-mem-environ",
    title: "the init's memory cannot be opened and its environment holds nothing of the host",
    async run(context) {
      const { connection } = await context.sandbox("a");
      const seen = await context.python<{ mem: Record<string, string>; environ: string[] | string }>(
        connection,
        probeProgram(String.raw`
mem = {}
for mode, flags in (("read", os.O_RDONLY), ("write", os.O_RDWR)):
    try:
        fd = os.open("/proc/1/mem", flags)
        os.close(fd)
        mem[mode] = "opened"
    except OSError as error:
        mem[mode] = errname(error.errno)
try:
    with open("/proc/1/environ", "rb") as f:
        environ = [v.decode("utf-8", "replace") for v in f.read().split(b"\0") if v]
except OSError as error:
    environ = errname(error.errno)
emit({"mem": mem, "environ": environ})`),
      );
      expect(seen.mem, "/proc/1/mem opened").toEqual({
        read: expect.not.stringMatching(/^opened$/),
        write: expect.not.stringMatching(/^opened$/),
      });
      if (Array.isArray(seen.environ)) {
        expect(
          hostVariablesIn([{ pid: 1, comm: "init", vars: seen.environ }]),
          "host variables in the init's environment",
        ).toEqual([]);
      }
    },
  },
  {
    id: "descriptors.host-environment",
    title: "no process inside (exec, terminal, background, init) carries a host variable",
    async run(context) {
      const leaks: string[] = [];
      for (const how of ["exec", "pty", "background"] as const) {
        leaks.push(
          ...hostVariablesIn((await survey(context, "a", how)()).environ).map((leak) => `${how}: ${leak}`),
        );
      }
      expect(leaks, "host environment inside the sandbox").toEqual([]);
    },
  },
  {
    id: "descriptors.later-sandbox",
    title:
      "a sandbox created while another has a terminal and a background process open inherits none of their descriptors",
    async run(context) {
      const { handle, connection } = await context.sandbox("b");
      const pty = await connection.openPty({ argv: ["/bin/sh"], cols: 80, rows: 24 });
      pty.output.resume();
      const background = await connection.startBackground({ argv: ["/bin/sh", "-c", "sleep 600"] });
      try {
        // Several rounds: see other-sandboxes.terminal-from-later-sandbox.
        for (const round of [1, 2, 3, 4]) {
          await context.withSandbox(`later-${round}`, {}, async (later) => {
            const seen = await context.python<Survey>(later.connection, SURVEY_SCRIPT);
            // This sandbox's own host files are descriptors.init's business; here: anything
            // opened for the other sandbox (its terminal, its output files, its sockets).
            const inherited = seen.foreign.filter(
              (entry) =>
                /ptmx|pts|tty/.test(entry.target) ||
                entry.target.includes(handle.sandboxId) ||
                (entry.target.startsWith("/") && !entry.target.includes(later.handle.sandboxId)),
            );
            expect(
              inherited,
              `descriptors of another sandbox inside one created later (round ${round})`,
            ).toEqual([]);
          });
        }
      } finally {
        pty.kill("SIGKILL");
        await connection.signalBackground(background.id, "SIGKILL").catch(() => undefined);
      }
    },
  },
  {
    id: "host-processes.invisible",
    title: "host processes are not in /proc",
    async run(context) {
      const { connection } = await context.sandbox("a");
      await withHostSleeper(async (pid, marker) => {
        const result = await context.sh(
          connection,
          `for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < "$f"; echo; done 2>/dev/null; cat /proc/${pid}/cmdline 2>/dev/null; echo end`,
        );
        expect(result.stdout).toContain("end");
        expect(result.stdout, "the host sleeper is visible inside").not.toContain(marker);
      });
    },
  },
  {
    id: "host-processes.pid1-is-sandbox-init",
    title: "pid 1 inside is the sandbox's own init, not the host's",
    async run(context) {
      const { connection } = await context.sandbox("a");
      const hostInit = (await readFile("/proc/1/cmdline", "utf8").catch(() => "")).replaceAll("\0", " ");
      const seen = await context.python<{ cmdline: string; sameRoot: boolean }>(
        connection,
        probeProgram(String.raw`
with open("/proc/1/cmdline", "rb") as f:
    cmdline = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
try:
    a, b = os.stat("/proc/1/root"), os.stat("/")
    same = (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
except PermissionError:
    # A non-dumpable init hides its root altogether: nothing of the host's to reach there.
    same = True
emit({"cmdline": cmdline, "sameRoot": same})`),
      );
      expect(seen.sameRoot, "pid 1's root is not the sandbox's").toBe(true);
      if (hostInit.length > 0) expect(seen.cmdline, "pid 1 inside is the host's init").not.toBe(hostInit);
    },
  },
  {
    id: "host-processes.kill-all",
    title: "kill -9 -1 and kills by host pid inside leave host processes alive",
    async run(context) {
      await withHostSleeper(async (pid) => {
        await context.withSandbox("killer", {}, async ({ connection }) => {
          await context.sh(
            connection,
            `kill -9 ${pid} 2>/dev/null; kill -9 -${pid} 2>/dev/null; python3 -c 'import os; os.kill(-1, 9)' 2>/dev/null; echo done`,
          );
        });
        expect(await hostProcessState(pid), "the host sleeper after kills from inside").toMatch(/^S/);
      });
    },
  },
  {
    id: "host-processes.ptrace-and-pidfd-by-host-pid",
    title: "ptrace, pidfd_open and kill of a host pid reach no host process",
    async run(context) {
      const { connection } = await context.sandbox("a");
      await withHostSleeper(async (pid, marker) => {
        const calls = await context.python<{
          host_pid_reach: { cmdline: string | null; ptrace: { allowed: boolean } };
        }>(connection, SYSCALLS_SCRIPT, { calls: ["host_pid_reach"], hostPid: pid });
        const reach = calls.host_pid_reach;
        // The same number may belong to a sandbox process; it must not be the host's sleeper.
        expect(reach.cmdline ?? "", "the host sleeper reached by its pid").not.toContain(marker);
        expect(await hostProcessState(pid), "the host sleeper after ptrace from inside").toMatch(/^S/);
      });
    },
  },
  {
    id: "host-processes.abstract-sockets",
    title: "a host abstract unix socket cannot be connected to",
    async run(context) {
      const { connection } = await context.sandbox("a");
      const name = `polydev-escape-host-${randomBytes(6).toString("hex")}`;
      let accepted = 0;
      const server = createServer((socket) => {
        accepted += 1;
        socket.destroy();
      });
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(`\0${name}`, () => resolve());
      });
      try {
        const seen = await context.python<{ answers: { address: string; connected?: boolean }[] }>(
          connection,
          SOCKET_PEERS_SCRIPT,
          { abstract: [name] },
        );
        const mine = seen.answers.find((answer) => answer.address === `@${name}`);
        expect(mine?.connected, "connected to the host's abstract socket").not.toBe(true);
        expect(accepted).toBe(0);
      } finally {
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
    },
  },
];
