/**
 * argv.* and env.*: what a request controls (argv, cwd, environment, the sandbox's create-time
 * environment, the home's shell start-up files) must never run anything in a host process.
 */
import { Readable } from "node:stream";
import { expect } from "vitest";
import type { AgentConnection } from "../agent.js";
import type { EscapePayloads } from "./escape-payloads.js";
import type { EscapeProbe, EscapeProbeContext } from "./escape-probe-context.js";
import { expectNoSecrets, homeOf, outcome, shellQuote } from "./escape-probe-helpers.js";
import { runCommand, runInBackground, runInPty, writeText } from "./run-command.js";

/** A marker line whose uid map is the initial user namespace's came from a host process. */
const HOST_NAMESPACE_MAP = /map=_*0_+0_+4294967295/;

/**
 * Reads both markers: the host's must not exist; the sandbox's must have at least one line (the
 * payload works, so the host's silence means something) and none from a process in the host's
 * user namespace.
 */
async function expectPayloadsStayedInside(
  payloads: EscapePayloads,
  connection: AgentConnection,
  what: string,
  options: { requireInside?: boolean } = {},
): Promise<void> {
  const host = await payloads.takeHostMarker();
  const inside = await payloads.takeSandboxMarker(connection);
  expect(host, `a payload ran in a HOST process through ${what}; host marker:\n${host}`).toBeUndefined();
  expect(
    inside.split("\n").filter((line) => HOST_NAMESPACE_MAP.test(line)),
    `a payload ran in the host's user namespace through ${what}`,
  ).toEqual([]);
  if (options.requireInside ?? true) {
    expect(
      inside,
      `no payload fired even inside the sandbox through ${what}: the probe proves nothing`,
    ).toMatch(/uid=\d+ /);
  }
}

/** The host path of a background process's output, if the sandbox can learn it (the issue's trick). */
async function backgroundOutputPath(connection: AgentConnection, payloads: EscapePayloads): Promise<string> {
  const run = await runInBackground(
    connection,
    ["/bin/sh", "-c", `readlink /proc/$$/fd/1 > /tmp/.polydev-bg-path; exec cat ${payloads.library}`],
    { env: { PATH: "/usr/bin:/bin" } },
  );
  expect(run.exitCode).toBe(0);
  const path = await runCommand(connection, "cat /tmp/.polydev-bg-path");
  return path.stdout.trim();
}

/** The payload environment, with the preload also pointing at a background output file. */
async function attackEnv(
  connection: AgentConnection,
  payloads: EscapePayloads,
): Promise<Record<string, string>> {
  const outputPath = await backgroundOutputPath(connection, payloads);
  const preload = outputPath.startsWith("/") ? `${payloads.library} ${outputPath}` : payloads.library;
  return { ...payloads.env, LD_PRELOAD: preload, LD_AUDIT: preload };
}

async function installedPayloads(
  context: EscapeProbeContext,
  connection: AgentConnection,
): Promise<EscapePayloads> {
  const payloads = await context.payloads();
  await payloads.install(connection);
  await payloads.takeHostMarker();
  await payloads.takeSandboxMarker(connection);
  return payloads;
}

/** Tries a request three ways: exec, background process, terminal. Each may be refused. */
async function everyWay(
  connection: AgentConnection,
  argv: string[],
  options: { env?: Record<string, string>; cwd?: string },
): Promise<{ exec: string; background: string; pty: string }> {
  const exec = await outcome(runCommand(connection, argv, options));
  const background = await outcome(runInBackground(connection, argv, options));
  const pty = await outcome(runInPty(connection, argv, options));
  return {
    exec: exec.ok ? exec.value.stdout + exec.value.stderr : `refused: ${exec.error}`,
    background: background.ok ? background.value.output : `refused: ${background.error}`,
    pty: pty.ok ? pty.value.output : `refused: ${pty.error}`,
  };
}

export const environmentProbes: EscapeProbe[] = [
  {
    id: "argv.dash-prefixed",
    title: "an argv starting with '-' runs that program literally (no wrapper takes it as an option)",
    async run(context) {
      const { connection } = await context.sandbox("a");
      const home = await homeOf(connection, context);
      await context.sh(
        connection,
        `mkdir -p bin && for n in -probe --help -U --; do printf '#!/bin/sh\\necho "literal[$0]" "$@"\\n' > "bin/$n"; chmod +x "bin/$n"; done`,
      );
      const env = { PATH: `${home}/bin:/usr/bin:/bin` };
      let ran = 0;
      for (const argv of [["-probe", "--version"], ["--help"], ["-U", "-m", "/bin/sh"], ["--", "x"]]) {
        const ways = await everyWay(connection, argv, { env });
        for (const [way, text] of Object.entries(ways)) {
          if (text.startsWith("refused:")) continue;
          expect(text, `${way} of ${JSON.stringify(argv)} did not run the program literally`).toContain(
            `literal[${home}/bin/${argv[0]}]`,
          );
          ran += 1;
        }
      }
      expect(ran, "every dash-prefixed argv was refused: the probe proves nothing").toBeGreaterThan(0);
    },
  },
  {
    id: "argv.very-long",
    title: "huge argv and env are refused or run, and the sandbox and its agent carry on",
    async run(context) {
      await context.withSandbox("argv-long", {}, async ({ handle, connection }) => {
        const attempts: { argv: string[]; env?: Record<string, string> }[] = [
          { argv: ["/bin/echo", "x".repeat(1024 * 1024)] },
          { argv: ["/bin/true", ...Array.from({ length: 300_000 }, () => "a")] },
          { argv: ["/bin/true"], env: { BIG: "y".repeat(1024 * 1024) } },
        ];
        for (const attempt of attempts) {
          await outcome(runCommand(connection, attempt.argv, attempt.env ? { env: attempt.env } : {}));
          await outcome(runInBackground(connection, attempt.argv, attempt.env ? { env: attempt.env } : {}));
        }
        expect((await runCommand(connection, "echo alive")).stdout).toBe("alive\n");
        expect(await context.driver().isAlive(handle)).toBe(true);
        const fresh = await context.driver().connect(handle);
        try {
          expect((await runCommand(fresh, "echo again")).stdout).toBe("again\n");
        } finally {
          await fresh.close();
        }
      });
    },
  },
  {
    id: "argv.nul-bytes",
    title: "a NUL in argv or env is refused, never silently cut",
    async run(context) {
      const { connection } = await context.sandbox("a");
      const argv = ["/bin/sh", "-c", 'printf "%s|" "$@"', "sh", "left\0right", "next"];
      const exec = await outcome(runCommand(connection, argv));
      if (exec.ok) {
        expect(exec.value.stdout, "exec cut an argument at its NUL").not.toBe("left|next|");
        expect(exec.value.exitCode, "exec ran an argv with a NUL").not.toBe(0);
      }
      const background = await outcome(runInBackground(connection, argv));
      if (background.ok)
        expect(background.value.output, "background cut at the NUL").not.toContain("left|next|");
      const env = await outcome(runCommand(connection, 'printf "%s|" "$X"', { env: { X: "left\0right" } }));
      if (env.ok) {
        expect(env.value.stdout, "exec cut an env value at its NUL").not.toBe("left|");
        expect(env.value.exitCode, "exec ran with an env value holding a NUL").not.toBe(0);
      }
    },
  },
  {
    id: "argv.cwd-dotdot",
    title: "a cwd of ../../.. is refused or stays inside",
    async run(context) {
      const { connection } = await context.sandbox("a");
      for (const cwd of ["../../..", "../../../root", "/../../..", "../../../proc/1/root"]) {
        const ways = await everyWay(
          connection,
          [
            "/bin/sh",
            "-c",
            `pwd; ls -la . ${context.secretPaths().map(shellQuote).join(" ")} 2>&1; echo end`,
          ],
          { cwd },
        );
        for (const [way, text] of Object.entries(ways))
          expectNoSecrets(context, text, `${way} with cwd ${cwd}`);
      }
    },
  },
  {
    id: "argv.cwd-symlink-to-root",
    title: "a cwd that is a symlink to / or to a host directory stays inside",
    async run(context) {
      const { connection } = await context.sandbox("a");
      const links = ["/", "/proc/1/root", ...context.secretDirs()];
      await context.sh(
        connection,
        links
          .map((target, index) => `rm -f esc-cwd-${index}; ln -s ${shellQuote(target)} esc-cwd-${index}`)
          .join("; "),
      );
      for (const index of links.keys()) {
        const ways = await everyWay(
          connection,
          ["/bin/sh", "-c", `ls -la; cat ./${context.canaryName} 2>/dev/null; echo end`],
          { cwd: `esc-cwd-${index}` },
        );
        for (const [way, text] of Object.entries(ways)) {
          expectNoSecrets(context, text, `${way} in a cwd linked to ${links[index]}`);
        }
      }
    },
  },
  {
    id: "argv.cwd-host-path",
    title: "a cwd naming a host directory is refused or means the sandbox's own path",
    async run(context) {
      const { connection } = await context.sandbox("a");
      for (const cwd of context.secretDirs()) {
        const ways = await everyWay(
          connection,
          ["/bin/sh", "-c", `ls -la; cat ./${context.canaryName} 2>/dev/null; echo end`],
          {
            cwd,
          },
        );
        for (const [way, text] of Object.entries(ways))
          expectNoSecrets(context, text, `${way} with cwd ${cwd}`);
      }
    },
  },
  {
    id: "env.exec",
    title: "LD_PRELOAD, BASH_ENV, PS4, NODE_OPTIONS… on an exec run nothing on the host",
    async run(context) {
      const { connection } = await context.sandbox("a");
      const payloads = await installedPayloads(context, connection);
      const env = await attackEnv(connection, payloads);
      await payloads.takeSandboxMarker(connection);
      await outcome(runCommand(connection, ["/bin/bash", "-c", "true"], { env }));
      await outcome(runCommand(connection, ["/bin/sh", "-c", "true"], { env, cwd: "/tmp" }));
      await expectPayloadsStayedInside(payloads, connection, "an exec's env");
    },
  },
  {
    id: "env.background",
    title: "the same environment on a background process runs nothing on the host",
    async run(context) {
      const { connection } = await context.sandbox("a");
      const payloads = await installedPayloads(context, connection);
      const env = await attackEnv(connection, payloads);
      await payloads.takeSandboxMarker(connection);
      await outcome(runInBackground(connection, ["/bin/bash", "-c", "true"], { env }));
      await outcome(runInBackground(connection, ["/bin/sh", "-c", "true"], { env, cwd: "/tmp" }));
      await expectPayloadsStayedInside(payloads, connection, "a background process's env");
    },
  },
  {
    id: "env.pty",
    title: "the same environment on a terminal runs nothing on the host",
    async run(context) {
      const { connection } = await context.sandbox("a");
      const payloads = await installedPayloads(context, connection);
      const env = await attackEnv(connection, payloads);
      await payloads.takeSandboxMarker(connection);
      await outcome(runInPty(connection, ["/bin/bash", "-c", "true"], { env }));
      await outcome(runInPty(connection, undefined, { env, input: "exit\n" }));
      await expectPayloadsStayedInside(payloads, connection, "a terminal's env");
    },
  },
  {
    id: "env.create-time",
    title: "the sandbox's create-time environment runs nothing on the host, whatever is started",
    async run(context) {
      const payloads = await context.payloads();
      const env = { ...payloads.env };
      await context.withSandbox("env-create", { env }, async ({ connection }) => {
        await payloads.install(connection);
        await payloads.takeHostMarker();
        await payloads.takeSandboxMarker(connection);
        await outcome(runCommand(connection, ["/bin/bash", "-c", "true"]));
        await outcome(runInBackground(connection, ["/bin/bash", "-c", "true"]));
        await outcome(runInPty(connection, ["/bin/bash", "-c", "true"]));
        await outcome(runInPty(connection, undefined, { input: "exit\n" }));
        await outcome(writeText(connection, "env-create.txt", "x"));
        await outcome(connection.files.read("env-create.txt"));
        await outcome(connection.files.list("."));
        await outcome(connection.files.stat("env-create.txt"));
        await outcome(connection.files.mkdir("env-create-dir"));
        await outcome(connection.files.remove("env-create-dir"));
        await expectPayloadsStayedInside(payloads, connection, "the create-time env");
      });
    },
  },
  {
    id: "env.name-injection",
    title: "env names holding '=', newlines or NULs cannot smuggle LD_PRELOAD or BASH_ENV",
    async run(context) {
      const { connection } = await context.sandbox("a");
      const payloads = await installedPayloads(context, connection);
      const env = {
        [`LD_PRELOAD=${payloads.library} #`]: "x",
        "POLYDEV_A\nLD_PRELOAD": payloads.library,
        "POLYDEV_B\0LD_PRELOAD": payloads.library,
        [`BASH_ENV=${payloads.rcFile} #`]: "x",
        "POLYDEV_C\nBASH_ENV": payloads.rcFile,
      };
      await everyWay(connection, ["/bin/bash", "-c", "true"], { env });
      await expectPayloadsStayedInside(payloads, connection, "env names", { requireInside: false });
    },
  },
  {
    id: "env.shell-rc-files",
    title: "the home's .profile, .bashrc and friends run only inside",
    async run(context) {
      const { connection } = await context.sandbox("b");
      const payloads = await installedPayloads(context, connection);
      for (const file of [
        ".profile",
        ".bashrc",
        ".bash_profile",
        ".bash_login",
        ".bash_logout",
        ".zshrc",
        ".shrc",
      ]) {
        await connection.files.write(
          file,
          Readable.from([Buffer.from(`${payloads.markerLine(`home-rc:${file}`)}\n`)]),
        );
      }
      await outcome(runInPty(connection, undefined, { input: "exit\n" }));
      await outcome(runInBackground(connection, ["/bin/bash", "-lc", "true"]));
      await outcome(runCommand(connection, ["/bin/bash", "-ic", "true"]));
      await expectPayloadsStayedInside(payloads, connection, "the home's shell start-up files");
      await context.sh(
        connection,
        "rm -f .profile .bashrc .bash_profile .bash_login .bash_logout .zshrc .shrc",
      );
    },
  },
];
