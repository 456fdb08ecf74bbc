/**
 * limits.*: the sandbox cannot change or leave its cgroups, and exhausting pids, memory, disk,
 * tmpfs or descriptors hurts only itself; nothing it writes grows the host's disk past a bound.
 */
import { spawn } from "node:child_process";
import { open } from "node:fs/promises";
import { Readable } from "node:stream";
import { expect } from "vitest";
import type { AgentConnection } from "../agent.js";
import type { EscapeProbe, EscapeProbeContext } from "./escape-probe-context.js";
import { outcome } from "./escape-probe-helpers.js";
import {
  CONSOLE_FLOOD_SCRIPT,
  FD_EXHAUST_SCRIPT,
  probeProgram,
  SYSCALLS_SCRIPT,
} from "./escape-probe-scripts.js";
import { runCommand, waitFor } from "./run-command.js";

const MiB = 1024 * 1024;
/** What the host's state directories may grow by for one flooding sandbox (metadata, logs). */
const HOST_SLACK_BYTES = 4 * MiB;

/** The host and a bystander sandbox still work. */
async function expectHostAndBystanderFine(context: EscapeProbeContext): Promise<void> {
  const host = spawn("/bin/true");
  expect(await new Promise((resolve) => host.once("close", resolve)), "the host can no longer spawn").toBe(0);
  const file = await open("/proc/self/status", "r");
  await file.close();
  const { connection } = await context.sandbox("b");
  expect((await runCommand(connection, "echo alive")).stdout, "a bystander sandbox stopped answering").toBe(
    "alive\n",
  );
}

async function stillAnswers(connection: AgentConnection): Promise<boolean> {
  const result = await outcome(runCommand(connection, "echo alive"));
  return result.ok && result.value.stdout === "alive\n";
}

export const limitProbes: EscapeProbe[] = [
  {
    id: "limits.cgroup-files-unwritable",
    title: "no cgroup file (limits, cgroup.procs of a parent) can be opened for writing",
    async run(context) {
      const { handle, connection } = await context.sandbox("a");
      const seen = await context.python<{ opened: string[]; cgroup: string }>(
        connection,
        probeProgram(`
opened = []
checked = 0
for top in ("/sys/fs/cgroup", "/sys"):
    for root, dirs, files in os.walk(top):
        for name in files:
            if not (name.startswith(("cgroup.", "memory.", "pids.", "cpu.", "cpuset.", "io.", "freezer.", "tasks", "notify_on_release", "release_agent"))):
                continue
            path = os.path.join(root, name)
            checked += 1
            try:
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
                os.close(fd)
                opened.append(path)
            except OSError:
                pass
        if checked > 5000:
            break
with open("/proc/self/cgroup") as f:
    cgroup = f.read()
emit({"opened": opened, "cgroup": cgroup})`),
      );
      expect(seen.opened, "cgroup files writable inside").toEqual([]);
      expect((await context.driver().stats(handle)).memoryLimitBytes).toBe(context.limits.memoryMb * MiB);
    },
  },
  {
    id: "limits.cgroup-mount",
    title: "cgroup (v1) and cgroup2 file systems cannot be mounted",
    async run(context) {
      const { connection } = await context.sandbox("a");
      const seen = await context.python<Record<string, { allowed: boolean }>>(connection, SYSCALLS_SCRIPT, {
        calls: ["mount_cgroup1", "mount_cgroup2"],
      });
      expect(seen.mount_cgroup1?.allowed).toBe(false);
      expect(seen.mount_cgroup2?.allowed).toBe(false);
    },
  },
  {
    id: "limits.fork-bomb",
    title: "a fork bomb is held at pidsMax while the host and another sandbox carry on",
    slow: true,
    async run(context) {
      const pidsMax = 48;
      await context.withSandbox(
        "bomb",
        { limits: { ...context.limits, pidsMax, cpu: 0.5 } },
        async ({ handle, connection }) => {
          const started = await runCommand(
            connection,
            "shell=$(command -v bash || echo sh); $shell -c 'bomb() { bomb | bomb & }; bomb' >/dev/null 2>&1 </dev/null; echo started",
          );
          expect(started.stdout).toBe("started\n");
          let peak = 0;
          const deadline = Date.now() + 1500;
          while (Date.now() < deadline) {
            const { pids } = await context.driver().stats(handle);
            peak = Math.max(peak, pids);
            expect(pids).toBeLessThanOrEqual(pidsMax);
            await new Promise((resolve) => setTimeout(resolve, 50));
          }
          expect(peak, "the bomb never pressed on the limit: the probe proves nothing").toBeGreaterThan(
            pidsMax / 2,
          );
          await expectHostAndBystanderFine(context);
        },
      );
    },
  },
  {
    id: "limits.memory-hog",
    title: "a memory hog is killed inside while the sandbox, the host and another sandbox carry on",
    slow: true,
    async run(context) {
      await context.withSandbox(
        "hog",
        { limits: { ...context.limits, memoryMb: 64 } },
        async ({ handle, connection }) => {
          const hog = await runCommand(
            connection,
            ["python3", "-c", "x = bytearray(512 * 1024 * 1024); print('survived')"],
            { timeoutMs: 60_000 },
          );
          expect(hog.stdout).not.toContain("survived");
          expect((await context.driver().stats(handle)).memoryBytes).toBeLessThanOrEqual(64 * MiB);
          expect(await stillAnswers(connection), "the sandbox died with its hog").toBe(true);
          await expectHostAndBystanderFine(context);
        },
      );
    },
  },
  {
    id: "limits.disk-fill-home",
    title: "filling the home stops at diskMb",
    slow: true,
    async run(context) {
      const diskMb = 16;
      await context.withSandbox(
        "diskfill",
        { limits: { ...context.limits, diskMb } },
        async ({ connection }) => {
          const fill = await runCommand(
            connection,
            `head -c ${diskMb * 2 * MiB} /dev/zero > big.bin 2>/dev/null; echo "exit $?"; wc -c < big.bin`,
          );
          const [status, size] = fill.stdout.trim().split("\n");
          expect(status).not.toBe("exit 0");
          expect(Number(size)).toBeLessThanOrEqual(diskMb * MiB);
          expect((await runCommand(connection, "rm big.bin && echo freed")).stdout).toBe("freed\n");
        },
      );
    },
  },
  {
    id: "limits.disk-fill-files-api",
    title: "an upload past diskMb fails, and nothing of it is kept on the host",
    slow: true,
    async run(context) {
      const diskMb = 16;
      await context.withSandbox(
        "uploadfill",
        { limits: { ...context.limits, diskMb } },
        async ({ connection }) => {
          const before = await context.hostStateBytes();
          const chunk = Buffer.alloc(MiB, 0x61);
          const upload = await outcome(
            connection.files.write(
              "upload.bin",
              Readable.from(Array.from({ length: diskMb * 2 }, () => chunk)),
            ),
          );
          if (upload.ok) expect(upload.value.sizeBytes).toBeLessThanOrEqual(diskMb * MiB);
          const size = await runCommand(connection, "cat upload.bin .polydev-upload-* 2>/dev/null | wc -c");
          expect(Number(size.stdout.trim())).toBeLessThanOrEqual(diskMb * MiB);
          expect((await context.hostStateBytes()) - before).toBeLessThanOrEqual(HOST_SLACK_BYTES);
          expect(await stillAnswers(connection)).toBe(true);
        },
      );
    },
  },
  {
    id: "limits.tmpfs-bounded-by-memory",
    title: "/tmp, /var/tmp, /run and /dev/shm fill only up to the memory limit, and the host carries on",
    slow: true,
    async run(context) {
      const memoryMb = 64;
      // One sandbox per directory: a full tmpfs cannot be freed by killing anything, so the
      // kernel may end the whole sandbox (its own problem, not the host's).
      for (const dir of ["/tmp", "/var/tmp", "/run", "/dev/shm"]) {
        await context.withSandbox(
          "tmpfill",
          { limits: { ...context.limits, memoryMb, diskMb: 16 } },
          async ({ connection }) => {
            // The writer reports each MiB as it lands, so its last line survives its OOM kill.
            // As the strongest user there is: root, in an image sandbox, writes where users cannot.
            const user = context.strongestUser;
            const fill = await outcome(
              runCommand(
                connection,
                [
                  "python3",
                  "-c",
                  `import sys\nf = open("${dir}/polydev-fill", "wb")\nn = 0\nwhile n < ${256 * MiB}:\n    f.write(bytes(${MiB}))\n    f.flush()\n    n += ${MiB}\n    print(n, flush=True)`,
                ],
                user === undefined ? {} : { user },
              ),
            );
            const written = fill.ok ? Number(fill.value.stdout.trim().split("\n").at(-1) ?? "0") : 0;
            expect(written, `${dir} took ${written} bytes`).toBeLessThanOrEqual((memoryMb + 1) * MiB);
            expect(
              written,
              `the writer never got going in ${dir}: the probe proves nothing`,
            ).toBeGreaterThanOrEqual(8 * MiB);
          },
        );
      }
      await expectHostAndBystanderFine(context);
    },
  },
  {
    id: "limits.fd-exhaustion",
    title: "opening descriptors until refused hurts only the sandbox, and the hard limit cannot be raised",
    slow: true,
    async run(context) {
      await context.withSandbox(
        "fds",
        { limits: { ...context.limits, memoryMb: 128, pidsMax: 32 } },
        async ({ connection }) => {
          const runs = await Promise.all(
            Array.from({ length: 4 }, () =>
              outcome(
                context.python<{ raiseHard: string; opened: number }>(connection, FD_EXHAUST_SCRIPT, {
                  max: 100_000,
                }),
              ),
            ),
          );
          for (const run of runs) if (run.ok) expect(run.value.raiseHard).toBe("refused");
          await expectHostAndBystanderFine(context);
          await waitFor(
            "the sandbox to recover",
            async () => ((await stillAnswers(connection)) ? true : undefined),
            20_000,
          );
        },
      );
    },
  },
  {
    id: "limits.background-output-host-bounded",
    title: "200 MiB of background output from a diskMb 16 sandbox does not land on the host's disk",
    slow: true,
    async run(context, skip) {
      if (!context.hasHostStateDirs()) skip("the setup names no host state directories to measure");
      await context.withSandbox(
        "bgflood",
        { limits: { ...context.limits, diskMb: 16, memoryMb: 256 } },
        async ({ connection }) => {
          const before = await context.hostStateBytes();
          const started = await connection.startBackground({
            argv: ["/bin/sh", "-c", `head -c ${200 * MiB} /dev/zero; echo done`],
          });
          await waitFor(
            "the flood to end",
            async () => ((await connection.getBackground(started.id)).state === "exited" ? true : undefined),
            90_000,
            200,
          );
          const grown = (await context.hostStateBytes()) - before;
          expect(grown, `the host's state grew by ${(grown / MiB).toFixed(1)} MiB`).toBeLessThanOrEqual(
            16 * MiB + HOST_SLACK_BYTES,
          );
          expect(await stillAnswers(connection)).toBe(true);
        },
      );
    },
  },
  {
    id: "limits.console-log-host-bounded",
    title:
      "64 MiB pushed at the init's console (reopened, pidfd_getfd, /dev/console) does not land on the host",
    slow: true,
    async run(context, skip) {
      if (!context.hasHostStateDirs()) skip("the setup names no host state directories to measure");
      await context.withSandbox("consoleflood", {}, async ({ connection }) => {
        const before = await context.hostStateBytes();
        const report = await context.python<Record<string, unknown>>(connection, CONSOLE_FLOOD_SCRIPT, {
          bytes: 64 * MiB,
        });
        const grown = (await context.hostStateBytes()) - before;
        expect(
          grown,
          `the host's state grew by ${(grown / MiB).toFixed(1)} MiB through ${JSON.stringify(report)}`,
        ).toBeLessThanOrEqual(HOST_SLACK_BYTES);
      });
    },
  },
];
