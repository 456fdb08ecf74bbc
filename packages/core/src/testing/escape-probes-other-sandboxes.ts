/**
 * other-sandboxes.*: one sandbox (B, or one created later) against another (A): files,
 * processes, signals, sockets, IPC, loopback, and the other's open terminal.
 */
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { rm, writeFile } from "node:fs/promises";
import { expect } from "vitest";
import type { AgentConnection } from "../agent.js";
import type { EscapeProbe, EscapeProbeContext } from "./escape-probe-context.js";
import { randomPort } from "./escape-probe-helpers.js";
import {
  CONNECT_SCRIPT,
  SOCKET_PEERS_SCRIPT,
  SYSV_IPC_SCRIPT,
  TERMINAL_INJECT_SCRIPT,
} from "./escape-probe-scripts.js";
import { waitFor } from "./run-command.js";

const unique = (): string => randomBytes(5).toString("hex");

interface PeerAnswers {
  answers: { address: string; connected?: boolean; peerPid?: number; error?: string }[];
}

/** A python listener in the background of `connection`, which notes every accepted connection. */
async function startListener(
  context: EscapeProbeContext,
  connection: AgentConnection,
  listen: string,
  noteFile: string,
): Promise<string> {
  const started = await connection.startBackground({
    argv: [
      "python3",
      "-c",
      `import socket, os, select
${listen}
open(${JSON.stringify(`${noteFile}.ready`)}, "w").close()
while True:
    ready, _, _ = select.select(servers, [], [])
    for s in ready:
        c, _ = s.accept()
        open(${JSON.stringify(noteFile)}, "a").write("accepted\\n")
        c.close()`,
    ],
  });
  await waitFor("the listener to be ready", async () =>
    (await context.sh(connection, `test -e ${noteFile}.ready && echo yes`)).stdout === "yes\n"
      ? true
      : undefined,
  );
  return started.id;
}

/** Runs `attack` while B has an open shell terminal; B's screen must never show the marker. */
async function withVictimTerminal(
  context: EscapeProbeContext,
  attack: (marker: string) => Promise<void>,
): Promise<void> {
  const { connection } = await context.sandbox("b");
  const pty = await connection.openPty({ argv: ["/bin/sh"], cols: 120, rows: 40 });
  let screen = "";
  pty.output.on("data", (chunk: Buffer) => {
    screen += chunk.toString("utf8");
  });
  try {
    const control = `control-${unique()}`;
    pty.write(`echo ${control}\n`);
    await waitFor("the victim terminal to answer", async () =>
      screen.split(control).length > 2 ? true : undefined,
    );
    const marker = `INJECTED-${unique()}`;
    await attack(marker);
    // Anything injected would have reached the shell by the time a later command echoes back.
    const after = `after-${unique()}`;
    pty.write(`echo ${after}\n`);
    await waitFor("the victim terminal to answer again", async () =>
      screen.split(after).length > 2 ? true : undefined,
    );
    expect(screen, "another sandbox typed into or wrote onto this terminal").not.toContain(marker);
  } finally {
    pty.kill("SIGKILL");
  }
}

type InjectResult = { attempts: { target: string; write?: string; tiocsti?: string }[] };

export const otherSandboxProbes: EscapeProbe[] = [
  {
    id: "other-sandboxes.files",
    title: "another sandbox's home, /tmp and /dev/shm are invisible",
    async run(context) {
      const a = await context.sandbox("a");
      const b = await context.sandbox("b");
      const marker = `other-${unique()}`;
      await context.sh(
        a.connection,
        `echo ${marker} > ~/${marker}.txt; echo ${marker} > /tmp/${marker}.txt; echo ${marker} > /dev/shm/${marker}.txt; echo ${marker} > /var/tmp/${marker}.txt`,
      );
      const seen = await context.sh(
        b.connection,
        `cat ~/${marker}.txt /tmp/${marker}.txt /proc/*/root/home/*/${marker}.txt 2>/dev/null; find / \\( -path /proc -o -path /sys -o -path /usr \\) -prune -o -name '${marker}*' -print 2>/dev/null; echo end`,
      );
      expect(seen.stdout).toBe("end\n");
    },
  },
  {
    id: "other-sandboxes.processes",
    title: "another sandbox's processes are invisible",
    async run(context) {
      const a = await context.sandbox("a");
      const b = await context.sandbox("b");
      const marker = `86400.${Math.floor(Math.random() * 1_000_000)}`;
      const started = await a.connection.startBackground({ argv: ["sleep", marker] });
      try {
        const seen = await context.sh(
          b.connection,
          "for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < \"$f\"; echo; done 2>/dev/null; echo end",
        );
        expect(seen.stdout).toContain("end");
        expect(seen.stdout, "A's process is visible from B").not.toContain(marker);
      } finally {
        await a.connection.signalBackground(started.id, "SIGKILL").catch(() => undefined);
      }
    },
  },
  {
    id: "other-sandboxes.kill-all",
    title: "kill -9 -1 in one sandbox leaves another's processes running",
    async run(context) {
      const a = await context.sandbox("a");
      const started = await a.connection.startBackground({ argv: ["sleep", "600"] });
      try {
        await context.withSandbox("killer", {}, async ({ connection }) => {
          await context.sh(
            connection,
            "python3 -c 'import os; os.kill(-1, 9)' 2>/dev/null; kill -9 -1; echo done",
          );
        });
        expect((await a.connection.getBackground(started.id)).state).toBe("running");
        expect((await context.sh(a.connection, "echo alive")).stdout).toBe("alive\n");
      } finally {
        await a.connection.signalBackground(started.id, "SIGKILL").catch(() => undefined);
      }
    },
  },
  {
    id: "other-sandboxes.unix-sockets",
    title: "every unix socket a sandbox can connect to is served from inside itself",
    async run(context) {
      const a = await context.sandbox("a");
      const b = await context.sandbox("b");
      const note = `/tmp/polydev-unix-${unique()}`;
      const home = (await context.sh(a.connection, 'printf %s "$HOME"')).stdout;
      const path = `${home}/polydev-a-${unique()}.sock`;
      const id = await startListener(
        context,
        a.connection,
        `s = socket.socket(socket.AF_UNIX); s.bind(${JSON.stringify(path)}); s.listen(8); servers = [s]`,
        note,
      );
      try {
        const seen = await context.python<PeerAnswers>(b.connection, SOCKET_PEERS_SCRIPT, { paths: [path] });
        const outside = seen.answers.filter((answer) => answer.connected === true && answer.peerPid === 0);
        expect(outside, "sockets served by a process outside this sandbox").toEqual([]);
        expect(seen.answers.find((answer) => answer.address === path)?.connected).not.toBe(true);
        expect((await context.sh(a.connection, `cat ${note} 2>/dev/null; echo end`)).stdout).toBe("end\n");
      } finally {
        await a.connection.signalBackground(id, "SIGKILL").catch(() => undefined);
      }
    },
  },
  {
    id: "other-sandboxes.abstract-sockets",
    title: "another sandbox's abstract unix socket cannot be connected to",
    async run(context) {
      const a = await context.sandbox("a");
      const b = await context.sandbox("b");
      const name = `polydev-a-${unique()}`;
      const note = `/tmp/polydev-abstract-${unique()}`;
      const id = await startListener(
        context,
        a.connection,
        `s = socket.socket(socket.AF_UNIX); s.bind("\\0${name}"); s.listen(8); servers = [s]`,
        note,
      );
      try {
        const seen = await context.python<PeerAnswers>(b.connection, SOCKET_PEERS_SCRIPT, {
          abstract: [name],
        });
        expect(seen.answers.find((answer) => answer.address === `@${name}`)?.connected).not.toBe(true);
        expect((await context.sh(a.connection, `cat ${note} 2>/dev/null; echo end`)).stdout).toBe("end\n");
      } finally {
        await a.connection.signalBackground(id, "SIGKILL").catch(() => undefined);
      }
    },
  },
  {
    id: "other-sandboxes.sysv-ipc",
    title: "another sandbox's System V shared memory, queues and semaphores are invisible",
    async run(context) {
      const a = await context.sandbox("a");
      const b = await context.sandbox("b");
      const key = 0x5000_0000 + Math.floor(Math.random() * 0x0fff_ffff);
      const made = await context.python<Record<string, number>>(a.connection, SYSV_IPC_SCRIPT, {
        key,
        mode: "create",
      });
      expect(
        Object.values(made).every((id) => id >= 0),
        `A could not create its IPC objects: ${JSON.stringify(made)}`,
      ).toBe(true);
      const seen = await context.python<{ shm: string; msg: string; sem: string }>(
        b.connection,
        SYSV_IPC_SCRIPT,
        {
          key,
          mode: "probe",
        },
      );
      expect({ shm: seen.shm, msg: seen.msg, sem: seen.sem }).toEqual({
        shm: "ENOENT",
        msg: "ENOENT",
        sem: "ENOENT",
      });
    },
  },
  {
    id: "other-sandboxes.posix-shm",
    title: "POSIX shared memory (/dev/shm) of another sandbox and of the host is invisible",
    async run(context) {
      const a = await context.sandbox("a");
      const b = await context.sandbox("b");
      const name = `polydev-shm-${unique()}`;
      const hostFile = existsSync("/dev/shm") ? `/dev/shm/${name}-host` : undefined;
      if (hostFile) await writeFile(hostFile, "host shm\n");
      try {
        await context.sh(a.connection, `echo a > /dev/shm/${name}-a`);
        const seen = await context.sh(
          b.connection,
          `ls -a /dev/shm; cat /dev/shm/${name}* 2>/dev/null; echo end`,
        );
        expect(seen.stdout).not.toContain(name);
      } finally {
        if (hostFile) await rm(hostFile, { force: true });
      }
    },
  },
  {
    id: "other-sandboxes.loopback",
    title: "a service on one sandbox's loopback is unreachable from another",
    async run(context) {
      const a = await context.sandbox("a");
      const b = await context.sandbox("b");
      const port = randomPort();
      const note = `/tmp/polydev-lo-${unique()}`;
      const id = await startListener(
        context,
        a.connection,
        `servers = []
for family, host in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
    s = socket.socket(family)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((host, ${port})); s.listen(8); servers.append(s)`,
        note,
      );
      try {
        const seen = await context.python<Record<string, string>>(b.connection, CONNECT_SCRIPT, {
          targets: [
            ["127.0.0.1", port],
            ["::1", port],
          ],
          timeoutSec: 2,
        });
        for (const [target, result] of Object.entries(seen)) expect(result, target).not.toMatch(/^connected/);
        expect((await context.sh(a.connection, `cat ${note} 2>/dev/null; echo end`)).stdout).toBe("end\n");
      } finally {
        await a.connection.signalBackground(id, "SIGKILL").catch(() => undefined);
      }
    },
  },
  {
    id: "other-sandboxes.terminal-from-running-sandbox",
    title: "a running sandbox cannot type into or write onto another sandbox's open terminal",
    async run(context) {
      const a = await context.sandbox("a");
      await withVictimTerminal(context, async (marker) => {
        await context.python<InjectResult>(a.connection, TERMINAL_INJECT_SCRIPT, { marker });
      });
    },
  },
  {
    id: "other-sandboxes.terminal-from-later-sandbox",
    title: "a sandbox created while another's terminal is open cannot reach that terminal",
    async run(context) {
      await withVictimTerminal(context, async (marker) => {
        // Several, one after another: a driver may keep processes prepared ahead of time (the
        // namespace driver's bubblewrap starters) and the ones forked while the terminal was
        // open come out of its pool only after the older ones.
        for (const round of [1, 2, 3, 4]) {
          await context.withSandbox(`term-later-${round}`, {}, async ({ connection }) => {
            await context.python<InjectResult>(connection, TERMINAL_INJECT_SCRIPT, { marker });
          });
        }
      });
    },
  },
];
