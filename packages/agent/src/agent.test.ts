import { mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import type { AgentConnection } from "@polydev/core";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { connectAgent } from "./client.js";
import { encodeJson, FrameType } from "./frame.js";
import { createInProcessAgent, duplexPair } from "./in-process.js";
import { identityLauncher } from "./launchers.js";
import { WINDOW_BYTES } from "./mux.js";
import { createAgentServer } from "./server.js";

let home: string;
let state: string;
let agent: AgentConnection;
const launcher = () => identityLauncher({ home, stateDir: state });

beforeEach(async () => {
  home = await mkdtemp(join(tmpdir(), "agent-home-"));
  state = await mkdtemp(join(tmpdir(), "agent-state-"));
  agent = await createInProcessAgent(launcher());
});
afterEach(async () => {
  await agent.close();
  await rm(home, { recursive: true, force: true });
  await rm(state, { recursive: true, force: true });
});

async function text(stream: Readable): Promise<string> {
  let out = "";
  for await (const chunk of stream) out += (chunk as Buffer).toString();
  return out;
}

async function run(argv: string[], stdin?: string | Buffer, extra: Record<string, unknown> = {}) {
  const process = await agent.exec({ argv, ...extra });
  process.stdin.end(stdin);
  const [stdout, stderr, exit] = await Promise.all([
    text(process.stdout),
    text(process.stderr),
    process.exited,
  ]);
  return { stdout, stderr, ...exit };
}

describe("hello and ping", () => {
  it("announces version and capabilities", async () => {
    expect(agent.hello.protocolVersion).toBe(1);
    expect(agent.hello.capabilities).toEqual(expect.arrayContaining(["exec", "pty", "files", "background"]));
    expect(await agent.ping()).toBeGreaterThanOrEqual(0);
  });

  it("refuses an agent that speaks another protocol version", async () => {
    const [client, server] = duplexPair();
    server.write(
      encodeJson(0, FrameType.hello, { protocolVersion: 99, agentVersion: "x", capabilities: [] }),
    );
    await expect(connectAgent(client)).rejects.toMatchObject({ code: "driver_unavailable" });
  });
});

describe("exec", () => {
  it("runs a command with stdout, stderr, exit code, cwd and env", async () => {
    const result = await run(["/bin/sh", "-c", "echo out; echo err >&2; pwd; echo $X; exit 3"], undefined, {
      env: { X: "y" },
    });
    expect(result).toMatchObject({
      stdout: `out\n${home}\ny\n`,
      stderr: "err\n",
      exitCode: 3,
      timedOut: false,
    });
  });

  it("does not pass the host environment through", async () => {
    process.env.POLYDEV_TEST_SECRET = "host-only";
    const result = await run(["/usr/bin/env"]);
    expect(result.stdout).not.toContain("host-only");
    delete process.env.POLYDEV_TEST_SECRET;
  });

  it("streams stdin, including 10 MB, and survives a process that ignores it", async () => {
    const big = Buffer.alloc(10 * 1024 * 1024, 97);
    expect((await run(["wc", "-c"], big)).stdout.trim()).toBe(String(big.length));
    expect((await run(["true"], big)).exitCode).toBe(0);
  });

  it("holds a fast producer back while the reader is paused (back-pressure)", async () => {
    const counter = join(home, "written");
    const process = await agent.exec({
      argv: [
        "/bin/sh",
        "-c",
        `head -c 50000000 /dev/zero | tee /dev/null | dd bs=64k status=none 2>/dev/null; echo done > ${counter}`,
      ],
    });
    process.stdin.end();
    process.stdout.pause();
    await sleep(500);
    // Unread, only a few windows of data can be in flight: the pipeline is still blocked.
    expect(process.stdout.readableLength).toBeLessThanOrEqual(WINDOW_BYTES * 2);
    const early = await run(["/bin/sh", "-c", `test -e ${counter} && echo finished || echo blocked`]);
    expect(early.stdout).toBe("blocked\n");
    let total = 0;
    process.stdout.on("data", (chunk: Buffer) => {
      total += chunk.length;
    });
    process.stdout.resume();
    await process.exited;
    expect(total).toBe(50_000_000);
  });

  it("kills a command at its timeout", async () => {
    const result = await run(["sleep", "30"], undefined, { timeoutMs: 200 });
    expect(result.timedOut).toBe(true);
    expect(result.durationMs).toBeLessThan(5000);
  });

  it("delivers signals to the command", async () => {
    const process = await agent.exec({
      argv: ["/bin/sh", "-c", "trap 'echo term; exit 9' TERM; while :; do sleep 0.05; done"],
    });
    process.stdin.end();
    await sleep(200);
    process.kill("SIGTERM");
    const [stdout, exit] = await Promise.all([text(process.stdout), process.exited]);
    expect(stdout).toBe("term\n");
    expect(exit.exitCode).toBe(9);
  });

  it("reports a missing command as exit 127 with a message", async () => {
    const result = await run(["no-such-command-xyz"]);
    expect(result.exitCode).toBe(127);
    expect(result.stderr).toContain("no-such-command-xyz");
  });
});

describe("pty", () => {
  it("runs an interactive shell and resizes", async () => {
    const term = await agent.openPty({ argv: ["/bin/sh"], cols: 80, rows: 24 });
    let screen = "";
    term.output.on("data", (chunk: Buffer) => {
      screen += chunk.toString();
    });
    term.write("echo $((6 * 7))\n");
    term.resize(100, 33);
    term.write("stty size\n");
    term.write("exit 4\n");
    const exit = await term.exited;
    expect(screen).toContain("42");
    expect(screen).toContain("33 100");
    expect(exit.exitCode).toBe(4);
  });
});

describe("background processes", () => {
  it("starts, lists, attaches from an offset, follows, signals and records the exit", async () => {
    const info = await agent.startBackground({
      argv: ["/bin/sh", "-c", "echo hello; trap 'echo bye; exit 5' TERM; while :; do sleep 0.05; done"],
    });
    expect(info.state).toBe("running");
    await expect.poll(async () => (await agent.getBackground(info.id)).outputBytes).toBeGreaterThan(0);
    expect(await text(await agent.attachBackground(info.id, { fromOffset: 1, follow: false }))).toBe(
      "ello\n",
    );
    const follower = agent.attachBackground(info.id, { follow: true }).then(text);
    await agent.signalBackground(info.id, "SIGTERM");
    expect(await follower).toBe("hello\nbye\n");
    const done = await agent.getBackground(info.id);
    expect(done).toMatchObject({ state: "exited", exitCode: 5 });
    await expect(agent.signalBackground(info.id, "SIGTERM")).rejects.toMatchObject({
      code: "process_not_running",
    });
    await expect(agent.getBackground("proc_000000000000")).rejects.toMatchObject({ code: "not_found" });
  });

  it("is still known to a new agent on the same state directory (after a crash)", async () => {
    const info = await agent.startBackground({ argv: ["sleep", "30"] });
    const fresh = createAgentServer(launcher());
    const [client, server] = duplexPair();
    fresh.serve(server);
    const second = await connectAgent(client);
    expect((await second.listBackground()).map((p) => p.id)).toEqual([info.id]);
    await second.signalBackground(info.id, "SIGKILL");
    await expect.poll(async () => (await second.getBackground(info.id)).state).toBe("exited");
    await second.close();
  });
});

describe("files", () => {
  it("writes, reads, lists, stats, makes directories and removes", async () => {
    await agent.files.mkdir("a/b");
    const written = await agent.files.write("a/b/c.txt", Readable.from([Buffer.from("content")]));
    expect(written.sizeBytes).toBe(7);
    expect(await text(await agent.files.read("a/b/c.txt"))).toBe("content");
    expect(await agent.files.list("a/b")).toEqual([
      expect.objectContaining({ name: "c.txt", path: "a/b/c.txt", type: "file", sizeBytes: 7 }),
    ]);
    expect(await agent.files.stat("a")).toMatchObject({ type: "directory", path: "a" });
    await expect(agent.files.remove("a")).rejects.toMatchObject({ code: "conflict" });
    await agent.files.remove("a", { recursive: true });
    await expect(agent.files.stat("a")).rejects.toMatchObject({ code: "not_found" });
    await expect(agent.files.read("missing")).rejects.toMatchObject({ code: "not_found" });
  });

  it("refuses paths that escape the home: ../, absolute, and through a symlink", async () => {
    await writeFile(join(state, "outside.txt"), "host secret");
    await symlink(state, join(home, "escape"));
    for (const path of ["../x", "/etc/passwd", "a/../../x", "escape/outside.txt"]) {
      await expect(agent.files.read(path), path).rejects.toMatchObject({ code: "path_outside_home" });
    }
    await expect(
      agent.files.write("escape/new.txt", Readable.from([Buffer.from("x")])),
    ).rejects.toMatchObject({
      code: "path_outside_home",
    });
  });

  it("watches a directory by polling and reports new and changed files", async () => {
    const controller = new AbortController();
    const events: string[] = [];
    const watching = (async () => {
      for await (const event of agent.files.watch(".", controller.signal)) {
        events.push(`${event.kind}:${event.path}`);
        if (events.length >= 1) controller.abort();
      }
    })();
    await sleep(300);
    await writeFile(join(home, "new.txt"), "x");
    await watching;
    expect(events).toContain("rename:new.txt");
  });
});
