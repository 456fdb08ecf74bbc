/**
 * The SandboxDriver contract: every isolation backend runs these same cases against real
 * sandboxes. A backend that cannot support a case skips it by id with a stated reason, so the
 * gap shows up in every test report instead of disappearing.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { rm, stat, writeFile } from "node:fs/promises";
import { networkInterfaces } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AgentConnection } from "../agent.js";
import type { SandboxDriver } from "../driver.js";
import type { SandboxHandle, SandboxLimits, SandboxSpec } from "../sandbox.js";
import { readHostFile, startProbeServer } from "./host-probes.js";
import { readText, runCommand, waitFor, writeText } from "./run-command.js";

export const DRIVER_CONTRACT_CASES = [
  "exec",
  "exit-code",
  "files",
  "home-persists",
  "isolation-between-sandboxes",
  "isolation-host-files",
  "isolation-host-processes",
  "network-none",
  "pids-limit",
  "memory-limit",
  "disk-limit",
  "hibernate",
  "list",
  "destroy",
  "stats",
  "logs",
] as const;
export type DriverContractCase = (typeof DRIVER_CONTRACT_CASES)[number];

export interface DriverContractSetup {
  driver: SandboxDriver;
  cleanup(): Promise<void>;
  /**
   * Host paths the sandbox must not see besides `/root` and `/etc/shadow`: the driver's data
   * directory, the server's database. Directories get a canary file planted for the test.
   */
  hostSecretPaths?: string[];
}

export interface DriverContractOptions {
  /** Cases this driver cannot support, each with the reason printed in the test name. */
  skip?: Partial<Record<DriverContractCase, string>>;
  /** Limits of the sandboxes the contract creates (default 1 cpu, 256 MiB, 64 MiB disk, 128 pids). */
  limits?: Partial<SandboxLimits>;
  /** Per-case timeout (default 60 s). */
  timeoutMs?: number;
}

const MiB = 1024 * 1024;
const DEFAULT_LIMITS: SandboxLimits = { cpu: 1, memoryMb: 256, diskMb: 64, pidsMax: 128 };

const uniqueId = (label: string): string => `ctr-${label}-${randomBytes(4).toString("hex")}`;

export function runDriverContract(
  name: string,
  setup: () => Promise<DriverContractSetup>,
  options: DriverContractOptions = {},
): void {
  describe(`SandboxDriver contract: ${name}`, () => {
    let context: DriverContractSetup | undefined;
    const limits: SandboxLimits = { ...DEFAULT_LIMITS, ...options.limits };
    const timeoutMs = options.timeoutMs ?? 60_000;

    beforeAll(async () => {
      context = await setup();
    });
    afterAll(async () => {
      await context?.cleanup();
    });

    const driver = (): SandboxDriver => {
      if (!context) throw new Error("the driver contract's setup did not run");
      return context.driver;
    };

    const spec = (label: string, extra: Partial<SandboxSpec> = {}): SandboxSpec => ({
      id: uniqueId(label),
      limits,
      network: "none",
      env: {},
      ...extra,
    });

    /** Creates a sandbox for one case and always destroys it, whatever the case did. */
    async function withSandbox<T>(
      label: string,
      extra: Partial<SandboxSpec>,
      use: (handle: SandboxHandle) => Promise<T>,
    ): Promise<T> {
      const handle = await driver().create(spec(label, extra));
      try {
        return await use(handle);
      } finally {
        await driver().destroy(handle);
      }
    }

    async function withConnection<T>(
      handle: SandboxHandle,
      use: (connection: AgentConnection) => Promise<T>,
    ): Promise<T> {
      const connection = await driver().connect(handle);
      try {
        return await use(connection);
      } finally {
        await connection.close();
      }
    }

    const sandboxCase = (id: DriverContractCase, title: string, body: () => Promise<void>): void => {
      const reason = options.skip?.[id];
      if (reason === undefined) {
        it(`${id}: ${title}`, body, timeoutMs);
        return;
      }
      if (reason.trim().length === 0) throw new Error(`skipping contract case "${id}" needs a reason`);
      it.skip(`${id}: ${title} (skipped: ${reason})`, body);
    };

    sandboxCase("exec", "runs a command with the spec's env and no host env", async () => {
      const hostVariable = "POLYDEV_CONTRACT_HOST_ONLY";
      process.env[hostVariable] = "leaked";
      try {
        await withSandbox("exec", { env: { CONTRACT_GREETING: "hello" } }, (handle) =>
          withConnection(handle, async (connection) => {
            const result = await runCommand(
              connection,
              `echo "$CONTRACT_GREETING world"; echo "\${${hostVariable}:-absent}"; test "$(pwd)" = "$HOME" && echo home`,
            );
            expect(result).toMatchObject({ exitCode: 0, stdout: "hello world\nabsent\nhome\n" });
            const argv = await runCommand(connection, ["/bin/echo", "two words", "$NOT_EXPANDED"]);
            expect(argv.stdout).toBe("two words $NOT_EXPANDED\n");
          }),
        );
      } finally {
        delete process.env[hostVariable];
      }
    });

    sandboxCase("exit-code", "reports a non-zero exit code and stderr", async () => {
      await withSandbox("exit", {}, (handle) =>
        withConnection(handle, async (connection) => {
          const result = await runCommand(connection, "echo oops >&2; exit 3");
          expect(result).toMatchObject({ exitCode: 3, stderr: "oops\n", stdout: "" });
          const missing = await runCommand(connection, "/definitely/not/here");
          expect(missing.exitCode).toBe(127);
        }),
      );
    });

    sandboxCase("files", "writes and reads back text and binary files", async () => {
      await withSandbox("files", {}, (handle) =>
        withConnection(handle, async (connection) => {
          await connection.files.mkdir("dir/sub", { parents: true });
          await writeText(connection, "dir/sub/hello.txt", "héllo\n");
          expect(await readText(connection, "dir/sub/hello.txt")).toBe("héllo\n");
          const binary = randomBytes(256 * 1024);
          await connection.files.write("blob.bin", Readable.from([binary]));
          const chunks: Buffer[] = [];
          for await (const chunk of await connection.files.read("blob.bin")) chunks.push(Buffer.from(chunk));
          expect(Buffer.concat(chunks).equals(binary)).toBe(true);
          const shell = await runCommand(connection, "cat dir/sub/hello.txt; wc -c < blob.bin");
          expect(shell.stdout).toBe(`héllo\n${binary.length}\n`);
        }),
      );
    });

    sandboxCase("home-persists", "keeps the home across connections", async () => {
      await withSandbox("persist", {}, async (handle) => {
        await withConnection(handle, (connection) => writeText(connection, "kept.txt", "still here"));
        await withConnection(handle, async (connection) => {
          expect(await readText(connection, "kept.txt")).toBe("still here");
        });
      });
    });

    sandboxCase("isolation-between-sandboxes", "two sandboxes cannot see each other's files", async () => {
      const marker = `other-${randomBytes(6).toString("hex")}`;
      await withSandbox("iso-a", {}, (first) =>
        withSandbox("iso-b", {}, async (second) => {
          await withConnection(first, (connection) => writeText(connection, `${marker}.txt`, marker));
          await withConnection(second, async (connection) => {
            const result = await runCommand(
              connection,
              `cat "$HOME/${marker}.txt" 2>/dev/null; find / \\( -path /proc -o -path /sys -o -path /dev -o -path /usr \\) -prune -o -name '${marker}*' -print 2>/dev/null; echo end`,
            );
            expect(result.stdout).toBe("end\n");
          });
        }),
      );
    });

    sandboxCase(
      "isolation-host-files",
      "host /root, /etc/shadow and the data directory are invisible",
      async () => {
        const canaryName = `.polydev-contract-${randomBytes(6).toString("hex")}`;
        const canaryText = `canary-${randomBytes(12).toString("hex")}`;
        const secretPaths = ["/root", "/etc/shadow", ...(context?.hostSecretPaths ?? [])];
        const planted: string[] = [];
        const fileContents: string[] = [];
        try {
          for (const path of secretPaths) {
            const info = await stat(path).catch(() => undefined);
            if (info?.isDirectory()) {
              const canary = join(path, canaryName);
              await writeFile(canary, canaryText, { mode: 0o600 });
              planted.push(canary);
            } else if (info?.isFile()) {
              const text = await readHostFile(path);
              if (text.trim().length > 0) fileContents.push(text.trim());
            }
          }
          await withSandbox("hostfiles", {}, (handle) =>
            withConnection(handle, async (connection) => {
              const reads = secretPaths.map((path) => `cat '${path}' '${path}/${canaryName}' 2>/dev/null`);
              const result = await runCommand(
                connection,
                `${reads.join("; ")}; find / \\( -path /proc -o -path /sys -o -path /usr \\) -prune -o -name '${canaryName}' -print 2>/dev/null; echo end`,
              );
              expect(result.stdout).not.toContain(canaryText);
              expect(result.stdout).not.toContain(canaryName);
              for (const text of fileContents) expect(result.stdout).not.toContain(text);
            }),
          );
        } finally {
          for (const canary of planted) await rm(canary, { force: true });
        }
      },
    );

    sandboxCase("isolation-host-processes", "host processes are invisible", async () => {
      // A host process with an argument no sandbox process has.
      const marker = `${86_000 + Math.floor(Math.random() * 300)}.${randomBytes(3).readUIntBE(0, 3)}`;
      const hostProcess = spawn("sleep", [marker], { stdio: "ignore" });
      try {
        await withSandbox("hostprocs", {}, (handle) =>
          withConnection(handle, async (connection) => {
            const result = await runCommand(
              connection,
              "for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < \"$f\"; echo; done 2>/dev/null; echo count $(ls -d /proc/[0-9]* | wc -l)",
            );
            expect(result.exitCode).toBe(0);
            expect(result.stdout).not.toContain(marker);
            const count = Number(/count (\d+)/.exec(result.stdout)?.[1]);
            // The sandbox's own init, the shell and its children; the host has far more.
            expect(count).toBeGreaterThan(0);
            expect(count).toBeLessThan(16);
          }),
        );
      } finally {
        hostProcess.kill("SIGKILL");
      }
    });

    sandboxCase("network-none", "network none has only loopback and reaches no host port", async () => {
      const probe = await startProbeServer();
      try {
        const hostAddresses = Object.values(networkInterfaces())
          .flat()
          .filter((address) => address !== undefined && address.family === "IPv4")
          .map((address) => address?.address ?? "");
        await withSandbox("netnone", { network: "none" }, (handle) =>
          withConnection(handle, async (connection) => {
            const interfaces = await runCommand(connection, "tail -n +3 /proc/net/dev | cut -d: -f1");
            expect(
              interfaces.stdout
                .split("\n")
                .map((line) => line.trim())
                .filter(Boolean),
            ).toEqual(["lo"]);
            const attempts = hostAddresses
              .map(
                (address) =>
                  `timeout 3 bash -c 'exec 3<>/dev/tcp/${address}/${probe.port}' 2>/dev/null && echo "connected ${address}"`,
              )
              .join("; ");
            // The attempts use bash's /dev/tcp; without bash they would pass for the wrong reason.
            const result = await runCommand(
              connection,
              `command -v bash >/dev/null || echo "no bash"; ${attempts}; echo end`,
            );
            expect(result.stdout).toBe("end\n");
          }),
        );
        expect(probe.connections()).toBe(0);
      } finally {
        await probe.close();
      }
    });

    sandboxCase(
      "pids-limit",
      "a fork bomb is held at the pids limit while another sandbox answers",
      async () => {
        const pidsMax = 48;
        await withSandbox("bomb", { limits: { ...limits, pidsMax, cpu: 0.5 } }, (bombed) =>
          withSandbox("bystander", {}, async (bystander) => {
            await withConnection(bombed, async (connection) => {
              const started = await runCommand(
                connection,
                // bash retries a failed fork where dash gives up, so the bomb keeps pressing on the limit.
                "shell=$(command -v bash || echo sh); $shell -c 'bomb() { bomb | bomb & }; bomb' >/dev/null 2>&1 </dev/null; echo started",
              );
              expect(started.stdout).toBe("started\n");
            });
            let peak = 0;
            const deadline = Date.now() + 1500;
            while (Date.now() < deadline) {
              const { pids } = await driver().stats(bombed);
              peak = Math.max(peak, pids);
              expect(pids).toBeLessThanOrEqual(pidsMax);
              await new Promise((resolve) => setTimeout(resolve, 50));
            }
            expect(peak).toBeGreaterThan(pidsMax / 2);
            await withConnection(bystander, async (connection) => {
              expect((await runCommand(connection, "echo alive")).stdout).toBe("alive\n");
            });
            const host = spawn("/bin/true");
            expect(await new Promise((resolve) => host.once("close", resolve))).toBe(0);
          }),
        );
      },
    );

    sandboxCase(
      "memory-limit",
      "a memory hog is killed inside while the sandbox and host carry on",
      async () => {
        await withSandbox("hog", { limits: { ...limits, memoryMb: 64 } }, (handle) =>
          withConnection(handle, async (connection) => {
            const hog = await runCommand(
              connection,
              "awk 'BEGIN { s = \"x\"; for (i = 0; i < 40; i++) s = s s; print length(s) }'",
              { timeoutMs: 30_000 },
            );
            expect(hog.timedOut).toBe(false);
            expect(hog.stdout).toBe("");
            expect(hog.exitCode !== 0 || hog.signal !== null).toBe(true);
            expect((await runCommand(connection, "echo survived")).stdout).toBe("survived\n");
          }),
        );
      },
    );

    sandboxCase(
      "disk-limit",
      "writing past the disk limit fails inside and the sandbox carries on",
      async () => {
        const diskMb = 8;
        await withSandbox("disk", { limits: { ...limits, diskMb } }, (handle) =>
          withConnection(handle, async (connection) => {
            const fill = await runCommand(
              connection,
              `head -c ${(diskMb + 4) * MiB} /dev/zero > big.bin 2>/dev/null; echo "exit $?"; wc -c < big.bin`,
            );
            const [status, size] = fill.stdout.trim().split("\n");
            expect(status).not.toBe("exit 0");
            expect(Number(size)).toBeLessThanOrEqual(diskMb * MiB);
            expect((await runCommand(connection, "rm big.bin && echo freed")).stdout).toBe("freed\n");
          }),
        );
      },
    );

    sandboxCase("hibernate", "hibernate stops progress and resume continues it", async () => {
      await withSandbox("hibernate", {}, (handle) =>
        withConnection(handle, async (connection) => {
          await connection.startBackground({
            argv: [
              "/bin/sh",
              "-c",
              "i=0; while :; do i=$((i+1)); echo $i > counter.tmp; mv counter.tmp counter; sleep 0.02; done",
            ],
          });
          const counter = async (): Promise<number> => Number((await readText(connection, "counter")).trim());
          await waitFor("the counter to start", async () =>
            (await counter().catch(() => 0)) >= 2 ? true : undefined,
          );
          // How fast it ticks on this host now (a loaded host ticks slower than every 20 ms).
          const calibrationStart = await counter();
          const calibrationMs = 500;
          await new Promise((resolve) => setTimeout(resolve, calibrationMs));
          const ticksPerMs = Math.max(0, (await counter()) - calibrationStart) / calibrationMs;
          const before = await counter();
          const hibernateStarted = Date.now();
          await driver().hibernate(handle);
          const hibernateMs = Date.now() - hibernateStarted;
          const frozenCpu = (await driver().stats(handle)).cpuUsageNs;
          // Nothing to wait on: the point is that nothing happens during this interval.
          const frozenMs = 2000;
          await new Promise((resolve) => setTimeout(resolve, frozenMs));
          expect((await driver().stats(handle)).cpuUsageNs).toBe(frozenCpu);
          const resumeStarted = Date.now();
          await driver().resume(handle);
          const resumeMs = Date.now() - resumeStarted;
          // A driver that writes processes to disk ("hibernate-memory") ends the connections it
          // had: the resumed sandbox is reached through a new one.
          await withConnection(handle, async (resumed) => {
            const counterNow = async (): Promise<number> =>
              Number((await readText(resumed, "counter")).trim());
            const after = await counterNow();
            // The loop may tick while the driver is still freezing and thawing it, but not
            // through the frozen interval: had it kept running, it would be frozenMs × rate more.
            const whileSwitching = ticksPerMs * (hibernateMs + resumeMs);
            expect(after - before).toBeLessThan(whileSwitching + Math.max(5, (ticksPerMs * frozenMs) / 2));
            await waitFor("the counter to move on", async () =>
              (await counterNow()) > after ? true : undefined,
            );
          });
        }),
      );
    });

    sandboxCase("list", "list shows live sandboxes and not destroyed ones", async () => {
      await withSandbox("list-a", {}, async (kept) => {
        const gone = await driver().create(spec("list-b"));
        try {
          const live = await driver().list();
          expect(live.find((s) => s.sandboxId === kept.sandboxId)?.alive).toBe(true);
          expect(live.find((s) => s.sandboxId === gone.sandboxId)?.alive).toBe(true);
        } finally {
          await driver().destroy(gone);
        }
        const after = await driver().list();
        expect(after.find((s) => s.sandboxId === kept.sandboxId)?.alive).toBe(true);
        expect(after.some((s) => s.sandboxId === gone.sandboxId)).toBe(false);
      });
    });

    sandboxCase("destroy", "destroy is idempotent and leaves the sandbox dead", async () => {
      const handle = await driver().create(spec("destroy"));
      try {
        expect(await driver().isAlive(handle)).toBe(true);
      } finally {
        await driver().destroy(handle);
      }
      await driver().destroy(handle);
      expect(await driver().isAlive(handle)).toBe(false);
      await expect(driver().connect(handle)).rejects.toMatchObject({ name: "PolydevError" });
    });

    sandboxCase("stats", "stats reports sane cpu, memory, pids and disk numbers", async () => {
      await withSandbox("stats", {}, (handle) =>
        withConnection(handle, async (connection) => {
          await runCommand(
            connection,
            "head -c 2097152 /dev/urandom > two-mib.bin; i=0; while [ $i -lt 2000 ]; do i=$((i+1)); done",
          );
          const stats = await driver().stats(handle);
          expect(stats.cpuUsageNs).toBeGreaterThan(0);
          expect(stats.memoryBytes).toBeGreaterThan(0);
          expect(stats.memoryLimitBytes).toBe(limits.memoryMb * MiB);
          expect(stats.memoryBytes).toBeLessThanOrEqual(stats.memoryLimitBytes);
          expect(stats.pids).toBeGreaterThanOrEqual(1);
          expect(stats.pids).toBeLessThanOrEqual(limits.pidsMax);
          expect(stats.diskBytes).toBeGreaterThanOrEqual(2 * MiB);
          expect(stats.diskBytes).toBeLessThanOrEqual(limits.diskMb * MiB);
        }),
      );
    });

    sandboxCase("logs", "logs are readable for a live sandbox", async () => {
      await withSandbox("logs", {}, async (handle) => {
        expect(typeof (await driver().logs(handle))).toBe("string");
      });
    });
  });
}
