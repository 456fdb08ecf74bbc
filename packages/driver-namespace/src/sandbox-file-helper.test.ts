/**
 * The agent's file operations in a real sandbox, done by the init binary's file helper
 * (native/file-ops.c): no shell or coreutils from the image is started for them, and no path,
 * symlink or symlink swapped mid-operation carries them out of the home.
 */
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { createInProcessAgent } from "@polydev/agent";
import type {
  AgentConnection,
  LaunchedProcess,
  LaunchRequest,
  SandboxHandle,
  SandboxLauncher,
} from "@polydev/core";
import { isPolydevError } from "@polydev/core";
import { readText, runCommand } from "@polydev/core/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EXEC_SERVER_IN_SANDBOX } from "./bwrap-args.js";
import { namespaceLauncher, SANDBOX_HOME } from "./launcher.js";
import { DEFAULT_EXEC_SERVER_PATH, NamespaceDriver } from "./namespace-driver.js";
import { removeCgroupParent } from "./testing/private-host.js";

const cgroupName = `polydev-test-files-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
const upload = (text: string) => Readable.from([Buffer.from(text)]);

async function collect(child: LaunchedProcess): Promise<{ stdout: string; exitCode: number | null }> {
  child.stdin.end();
  child.stderr.resume();
  let stdout = "";
  for await (const chunk of child.stdout) stdout += String(chunk);
  return { stdout, exitCode: (await child.exited).exitCode };
}

/** Settles with what the operation gave, or the error code it was refused with. */
async function outcome<T>(operation: Promise<T>): Promise<{ value?: T; code?: string }> {
  try {
    return { value: await operation };
  } catch (error) {
    if (isPolydevError(error)) return { code: error.code };
    throw error;
  }
}

describe("file operations by the sandbox's init binary", () => {
  let rootDir: string;
  let driver: NamespaceDriver;
  let handle: SandboxHandle;
  let launcher: SandboxLauncher;
  let agent: AgentConnection;
  /** The same sandbox, its file helper told to walk instead of using openat2 (as before 5.6). */
  let walkingAgent: AgentConnection;
  /** The argv of every process the agent started in the sandbox. */
  const started: string[][] = [];

  beforeAll(async () => {
    if (!existsSync(DEFAULT_EXEC_SERVER_PATH)) {
      throw new Error(`${DEFAULT_EXEC_SERVER_PATH} is missing: run scripts/ensure.sh to build it`);
    }
    rootDir = await mkdtemp(join(tmpdir(), "polydev-files-"));
    const hostUidBase = 1_000_000 + Math.floor(Math.random() * 900) * 10_000;
    driver = new NamespaceDriver({ rootDir, cgroupName, hostUidBase, hostUidCount: 10_000 });
    handle = await driver.create({
      id: `files-${Math.random().toString(36).slice(2, 8)}`,
      limits: { cpu: 1, memoryMb: 256, diskMb: 64, pidsMax: 128 },
      network: "none",
      env: {},
    });
    const { hostUid, execSocket } = handle.data;
    if (typeof hostUid !== "number" || typeof execSocket !== "string") {
      throw new Error(`expected an exec server in ${JSON.stringify(handle.data)}`);
    }
    const inner = namespaceLauncher({
      execSocket,
      execDir: dirname(execSocket),
      hostUid,
      env: {},
      network: "none",
    });
    launcher = {
      ...inner,
      start: (request: LaunchRequest) => {
        started.push([...request.argv]);
        return inner.start(request);
      },
    };
    agent = await createInProcessAgent(launcher);
    walkingAgent = await createInProcessAgent(
      namespaceLauncher({
        execSocket,
        execDir: dirname(execSocket),
        hostUid,
        env: { POLYDEV_FILE_OPS_NO_OPENAT2: "1" },
        network: "none",
      }),
    );
  });
  afterAll(async () => {
    await agent?.close();
    await walkingAgent?.close();
    if (handle) await driver.destroy(handle);
    await rm(rootDir, { recursive: true, force: true });
    await removeCgroupParent(cgroupName);
  });

  /** Runs a setup command in the sandbox, outside the recorded file operations. */
  const inSandbox = async (command: string): Promise<string> => {
    const before = started.length;
    const result = await runCommand(agent, command);
    started.splice(before);
    expect(result.exitCode, result.stderr).toBe(0);
    return result.stdout;
  };

  it("does every file operation without starting a shell or any program of the image", async () => {
    expect(launcher.fileHelper).toEqual([EXEC_SERVER_IN_SANDBOX, "--file"]);
    const { files } = agent;
    expect(await files.write("project/notes.txt", upload("hello\n"), { mode: 0o640 })).toEqual({
      sizeBytes: 6,
    });
    expect(await readText(agent, "project/notes.txt")).toBe("hello\n");
    expect(await files.stat("project/notes.txt")).toMatchObject({ type: "file", sizeBytes: 6, mode: 0o640 });
    await files.mkdir("project/src/lib");
    await files.mkdir("project/single", { parents: false });
    await files.rename("project/notes.txt", "project/src/notes.txt");
    expect((await files.list("project")).map((entry) => [entry.name, entry.type])).toEqual([
      ["single", "directory"],
      ["src", "directory"],
    ]);
    const watching = new AbortController();
    const iterator = files.watch("project", watching.signal)[Symbol.asyncIterator]();
    let event: unknown;
    const next = iterator.next().then((result) => {
      event = result.value;
    });
    // Written until the watch reports it: the first write may land before its first listing.
    for (let i = 0; event === undefined && i < 100; i++) {
      await files.write("project/new.txt", upload("x".repeat(i + 1)));
      await sleep(100);
    }
    await next;
    expect(event).toMatchObject({ path: "project/new.txt" });
    watching.abort();
    await iterator.return?.();
    await files.remove("project", { recursive: true });
    await expect(files.stat("project")).rejects.toMatchObject({ code: "not_found" });

    expect(started.length).toBeGreaterThan(8);
    expect(started.filter((argv) => argv[0] !== EXEC_SERVER_IN_SANDBOX || argv[1] !== "--file")).toEqual([]);
  });

  it("refuses symlinks and .. that lead out of the home, and never touches their targets", async () => {
    await inSandbox(
      "ln -s /etc/passwd pw && ln -s /etc etc-link && mkdir -p /tmp/outside && ln -s /tmp/outside out",
    );
    const passwd = await inSandbox("cat /etc/passwd");
    expect(passwd.length).toBeGreaterThan(0);
    const { files } = agent;
    const refused = [
      () => files.read("pw"),
      () => files.stat("pw"),
      () => files.read("etc-link/passwd"),
      () => files.list("etc-link"),
      () => files.write("out/planted", upload("x")),
      () => files.write("etc-link/passwd", upload("x")),
      () => files.mkdir("out/dir"),
      () => files.remove("etc-link/passwd"),
      () => files.rename("etc-link/passwd", "stolen"),
      () => files.rename("pw", "out/moved"),
    ];
    for (const attempt of refused) expect(await outcome(attempt())).toEqual({ code: "path_outside_home" });
    // `..` is refused by the agent before anything runs; the helper refuses it on its own too.
    for (const path of ["../../etc/passwd", "a/../../../etc/passwd", "..", "etc-link/../../.."]) {
      const answer = await collect(
        launcher.start({
          argv: [EXEC_SERVER_IN_SANDBOX, "--file", "read", SANDBOX_HOME, path],
          cwd: SANDBOX_HOME,
          env: {},
        }),
      );
      expect(answer, path).toEqual({ stdout: "", exitCode: 91 });
    }
    expect(await inSandbox("ls -A /tmp/outside")).toBe("");
    expect(await inSandbox("cat /etc/passwd")).toBe(passwd);
    // The links themselves are the home's: removed, their targets untouched.
    await files.remove("pw");
    await files.remove("etc-link");
    expect(await inSandbox("test -f /etc/passwd && test -d /etc && echo kept")).toBe("kept\n");
  });

  it.each([
    ["with openat2", () => agent],
    ["without openat2", () => walkingAgent],
  ])(
    "is not carried out of the home by a directory swapped for a symlink mid-operation (%s)",
    async (_, agentOf) => {
      await inSandbox(
        "mkdir -p real /tmp/swapped-out && echo inside > real/passwd && rm -rf d && ls /usr/bin/perl >/dev/null",
      );
      const passwd = await inSandbox("cat /etc/passwd");
      // `d` is by turns a real directory of the home, a symlink to /etc and one to
      // /tmp/swapped-out, each for half a millisecond (and absent between for a few microseconds):
      // the window between resolving a path and opening it, which the sh scripts lose.
      const swapper = await agent.exec({
        argv: [
          "/usr/bin/perl",
          "-e",
          "for (;;) { for my $out ('/etc', '/tmp/swapped-out') { " +
            "rename 'real', 'd'; select undef, undef, undef, 0.0005; rename 'd', 'real'; " +
            "symlink $out, 'd'; select undef, undef, undef, 0.0005; unlink 'd'; } }",
        ],
      });
      swapper.stdin.end();
      try {
        const seen = new Set<string>();
        for (let i = 0; i < 150; i++) {
          const read = await outcome(readText(agentOf(), "d/passwd"));
          expect(read.value === undefined || read.value === "inside\n", "a read reached /etc/passwd").toBe(
            true,
          );
          expect(read.value).not.toBe(passwd);
          seen.add(read.code ?? "read inside");
          const written = await outcome(agentOf().files.write(`d/planted-${i}`, upload("x")));
          seen.add(written.code ?? "written inside");
        }
        // Every outcome is one of these: the swap was won by neither side for long.
        expect(
          [...seen].filter(
            (o) =>
              !["read inside", "written inside", "path_outside_home", "not_found", "command_failed"].includes(
                o,
              ),
          ),
        ).toEqual([]);
      } finally {
        swapper.kill("SIGKILL");
        await swapper.exited;
      }
      expect(await inSandbox("ls -A /tmp/swapped-out")).toBe("");
      expect(await inSandbox("cat /etc/passwd")).toBe(passwd);
    },
  );
});
