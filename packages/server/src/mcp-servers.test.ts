/**
 * MCP servers: configured once per user (secret values sealed, never answered), handed to the
 * real claude, codex and gemini CLIs in their own config formats inside the run's sandbox; a stdio
 * server is started by the CLI inside the sandbox (a marker it writes is there, not on the host),
 * and a tool call the fake provider asks for is answered by that server.
 */
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { FakeProviders, FakeRequestView, FakeTurn } from "@polydev/fake-providers";
import { startFakeProviders } from "@polydev/fake-providers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApiClient, TestServer } from "./testing/harness.js";
import { createUser, readSse, startTestServer } from "./testing/harness.js";

const installed = ["claude", "codex", "gemini"].every((cli) => existsSync(`/usr/local/bin/${cli}`));
const ENV_SECRET = `mcp-env-secret-${randomBytes(8).toString("hex")}`;
const HEADER_SECRET = `Bearer mcp-header-secret-${randomBytes(8).toString("hex")}`;
const MARKER = `/tmp/polydev-mcp-marker-${randomBytes(6).toString("hex")}`;

/**
 * A tiny stdio MCP server (newline-delimited JSON-RPC): one tool, `ping`, answering a fixed word.
 * On start it writes MARKER with its uid and the env secret's length, proving where it ran. With
 * a second argument "crash" it exits in the middle of a tool call instead of answering.
 */
const PROBE_SERVER = `
const fs = require("fs");
fs.writeFileSync(process.argv[1], "started uid=" + process.getuid() + " secret=" + (process.env.PROBE_TOKEN || "").length + "\\n");
let buffer = "";
const send = (m) => process.stdout.write(JSON.stringify(m) + "\\n");
process.stdin.on("data", (chunk) => {
  buffer += chunk;
  for (let at = buffer.indexOf("\\n"); at !== -1; at = buffer.indexOf("\\n")) {
    const line = buffer.slice(0, at).trim();
    buffer = buffer.slice(at + 1);
    if (!line) continue;
    const m = JSON.parse(line);
    if (m.id === undefined) continue;
    if (m.method === "initialize")
      send({ jsonrpc: "2.0", id: m.id, result: { protocolVersion: m.params.protocolVersion, capabilities: { tools: {} }, serverInfo: { name: "probe", version: "1.0.0" } } });
    else if (m.method === "tools/list")
      send({ jsonrpc: "2.0", id: m.id, result: { tools: [{ name: "ping", description: "Answers pong", inputSchema: { type: "object", properties: {} } }] } });
    else if (m.method === "tools/call") {
      if (process.argv[2] === "crash") {
        fs.appendFileSync(process.argv[1], "crashing\\n");
        process.exit(3);
      }
      fs.appendFileSync(process.argv[1], "called\\n");
      send({ jsonrpc: "2.0", id: m.id, result: { content: [{ type: "text", text: "pong-from-the-sandbox" }] } });
    } else if (m.method === "ping") send({ jsonrpc: "2.0", id: m.id, result: {} });
    else send({ jsonrpc: "2.0", id: m.id, error: { code: -32601, message: "no " + m.method } });
  }
});
`;

interface Run {
  id: string;
  state: string;
  exitReason: string | null;
  finalText: string | null;
}

async function waitForEnd(api: ApiClient, id: string): Promise<Run> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const run = (await api.call<Run>("GET", `/v1/runs/${id}`)).body;
    if (["succeeded", "failed", "cancelled", "timed_out"].includes(run.state)) return run;
    if (Date.now() > deadline) throw new Error(`run still ${run.state}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

describe("MCP servers through the API", () => {
  let t: TestServer;
  let alice: ApiClient;
  let bob: ApiClient;
  beforeAll(async () => {
    t = await startTestServer({ mcpServers: { maxPerUser: 3 } });
    alice = await createUser(t.api, "alice");
    bob = await createUser(t.api, "bob");
  });
  afterAll(async () => {
    await t?.close();
  });

  it("stores secret values sealed and answers only their names", async () => {
    const stdio = await alice.call("POST", "/v1/mcp-servers", {
      name: "probe",
      command: "node",
      args: ["-e", "1"],
      env: { PROBE_TOKEN: ENV_SECRET },
    });
    expect(stdio.status, JSON.stringify(stdio.body)).toBe(201);
    expect(stdio.body).toEqual({
      name: "probe",
      transport: "stdio",
      command: "node",
      args: ["-e", "1"],
      url: null,
      env: ["PROBE_TOKEN"],
      headers: [],
      createdAt: expect.any(String),
    });
    const http = await alice.call("POST", "/v1/mcp-servers", {
      name: "docs",
      url: "https://mcp.example.com/mcp",
      headers: { Authorization: HEADER_SECRET },
    });
    expect(http.status).toBe(201);
    const listed = await alice.call<{ items: { name: string }[] }>("GET", "/v1/mcp-servers");
    expect(listed.body.items.map((s) => s.name)).toEqual(["docs", "probe"]);
    expect(JSON.stringify(listed.body)).not.toContain(ENV_SECRET);
    expect(JSON.stringify(listed.body)).not.toContain("mcp-header-secret");
    expect((await bob.call<{ items: unknown[] }>("GET", "/v1/mcp-servers")).body.items).toEqual([]);
    expect((await bob.call("DELETE", "/v1/mcp-servers/probe")).status).toBe(404);
    for (const file of ["polydev.db", "polydev.db-wal"]) {
      const bytes = await readFile(join(t.dataDir, file)).catch(() => Buffer.alloc(0));
      expect(bytes.includes(Buffer.from(ENV_SECRET))).toBe(false);
      expect(bytes.includes(Buffer.from("mcp-header-secret"))).toBe(false);
    }
    expect(await readFile(t.logFile, "utf8")).not.toContain(ENV_SECRET);
    expect((await alice.call("DELETE", "/v1/mcp-servers/docs")).status).toBe(200);
    expect((await alice.call("DELETE", "/v1/mcp-servers/docs")).status).toBe(404);
  });

  it("refuses what it cannot hand to an agent with a 4xx saying what to fix", async () => {
    const cases: [Record<string, unknown>, number, string][] = [
      [{ name: "probe", command: "node" }, 409, "conflict"],
      [{ name: "both", command: "x", url: "https://a.example/" }, 400, "invalid_request"],
      [{ name: "none" }, 400, "invalid_request"],
      [{ name: "bad name!", command: "x" }, 400, "invalid_request"],
      [{ name: "ftp", url: "ftp://a.example/" }, 400, "invalid_request"],
      [{ name: "hdr", command: "x", headers: { A: "b" } }, 400, "invalid_request"],
      [{ name: "envurl", url: "https://a.example/", env: { A: "b" } }, 400, "invalid_request"],
      [{ name: "badenv", command: "x", env: { "A-B": "c" } }, 400, "invalid_request"],
      [{ name: "nul", command: "x\u0000y" }, 400, "invalid_request"],
    ];
    for (const [body, status, code] of cases) {
      const response = await alice.call<{ error: { code: string } }>("POST", "/v1/mcp-servers", body);
      expect(response.status, JSON.stringify(body)).toBe(status);
      expect(response.body.error.code).toBe(code);
    }
    await alice.call("POST", "/v1/mcp-servers", { name: "two", command: "x" });
    await alice.call("POST", "/v1/mcp-servers", { name: "three", command: "x" });
    const over = await alice.call<{ error: { code: string } }>("POST", "/v1/mcp-servers", {
      name: "four",
      command: "x",
    });
    expect(over.status).toBe(429);
    expect(over.body.error.code).toBe("limit_exceeded");
  });
});

describe.skipIf(!installed)(
  "MCP servers handed to the real CLIs in the sandbox (skipped when scripts/ensure.sh could not install them)",
  () => {
    let fake: FakeProviders;
    let t: TestServer;
    let alice: ApiClient;

    /**
     * Asks for the probe's tool when a request offers it, then says what the tool answered. Codex
     * (in its code mode) lists MCP servers as deferred namespaces, reachable from its `exec`
     * tool's script as `tools.mcp__<server>__<tool>`.
     */
    const callProbe = (view: FakeRequestView): FakeTurn | undefined => {
      if (view.lastIsToolResult) return { text: "The probe answered." };
      if (!view.prompt.includes("use the probe")) return undefined;
      const tool = view.toolNames.find((name) => name.includes("probe") && name.endsWith("ping"));
      if (tool) return { toolCall: { tool, arguments: {} } };
      if (view.freeformToolNames.includes("exec"))
        return {
          toolCall: {
            tool: "exec",
            input: "const r = await tools.mcp__probe__ping({});\ntext(JSON.stringify(r));\n",
          },
        };
      return undefined;
    };

    beforeAll(async () => {
      fake = await startFakeProviders({ script: callProbe });
      t = await startTestServer({ upstreams: { anthropic: fake.url, openai: fake.url, gemini: fake.url } });
      alice = await createUser(t.api, "alice");
      for (const provider of ["anthropic", "openai", "gemini"])
        await alice.call("PUT", `/v1/credentials/${provider}`, { apiKey: "sk-real-provider-key-123456" });
      const created = await alice.call("POST", "/v1/mcp-servers", {
        name: "probe",
        command: "node",
        args: ["-e", PROBE_SERVER, MARKER],
        env: { PROBE_TOKEN: ENV_SECRET },
      });
      expect(created.status, JSON.stringify(created.body)).toBe(201);
    }, 120_000);
    afterAll(async () => {
      await t?.close();
      await fake?.close();
    });

    const files: Record<string, string> = {
      claude: ".polydev/mcp/claude.json",
      codex: ".codex/config.toml",
      gemini: ".gemini/settings.json",
    };

    it.each(["claude", "codex", "gemini"])(
      "%s reads the server from its own config, starts it inside the sandbox and calls its tool",
      async (agent) => {
        const sandbox = await alice.createSandbox();
        fake.requests.length = 0;
        const started = await alice.call<Run>("POST", "/v1/runs", {
          agent,
          prompt: "use the probe",
          sandboxId: sandbox,
        });
        expect(started.status, JSON.stringify(started.body)).toBe(201);
        const run = await waitForEnd(alice, started.body.id);
        expect(run.state, run.exitReason ?? "").toBe("succeeded");

        const config = await alice.call("GET", `/v1/sandboxes/${sandbox}/files/content?path=${files[agent]}`);
        expect(config.status).toBe(200);
        const text = String(
          config.body === undefined
            ? ""
            : typeof config.body === "string"
              ? config.body
              : JSON.stringify(config.body),
        );
        expect(text).toContain("probe");
        expect(text).toContain(ENV_SECRET);
        expect(text).toContain(MARKER);

        // The server ran in the sandbox: its marker is there, and nowhere on the host.
        const marker = await alice.exec(sandbox, ["cat", MARKER]);
        expect(marker.body.exitCode, marker.body.stderr).toBe(0);
        expect(marker.body.stdout).toContain(`secret=${ENV_SECRET.length}`);
        expect(existsSync(MARKER)).toBe(false);

        // The model asked for the MCP tool; the CLI called the server, whose answer came back.
        expect(marker.body.stdout).toContain("called");
        const response = await fetch(`${t.url}/v1/runs/${run.id}/events`, {
          headers: { authorization: `Bearer ${alice.key}` },
        });
        const events = await readSse(response);
        // The tool's answer went back to the model in the CLI's next request.
        expect(fake.requests.some((r) => JSON.stringify(r.body).includes("pong-from-the-sandbox"))).toBe(
          true,
        );
        // Codex's JSON stream reports no item for a call made from its code-mode script.
        if (agent !== "codex") {
          expect(events.some((e) => e.event === "tool_call")).toBe(true);
          const results = events.filter((e) => e.event === "tool_result").map((e) => e.data);
          expect(JSON.stringify(results)).toContain("pong-from-the-sandbox");
        }
      },
      180_000,
    );

    it("gives a follow-up the servers its run got: claude is resumed with its MCP config again", async () => {
      const sandbox = await alice.createSandbox();
      const started = await alice.call<Run>("POST", "/v1/runs", {
        agent: "claude",
        prompt: "say hello",
        sandboxId: sandbox,
      });
      expect(started.status, JSON.stringify(started.body)).toBe(201);
      expect((await waitForEnd(alice, started.body.id)).state).toBe("succeeded");
      const from = fake.requests.length;
      const followUp = await alice.call("POST", `/v1/runs/${started.body.id}/messages`, {
        prompt: "now use the probe",
      });
      expect(followUp.status, JSON.stringify(followUp.body)).toBe(202);
      const run = await waitForEnd(alice, started.body.id);
      expect(run.state, run.exitReason ?? "").toBe("succeeded");
      // The resumed CLI offered the server's tool, called it, and sent its answer back.
      const sent = fake.requests.slice(from).map((r) => JSON.stringify(r.body));
      expect(sent.some((body) => body.includes("mcp__probe__ping"))).toBe(true);
      expect(sent.some((body) => body.includes("pong-from-the-sandbox"))).toBe(true);
    }, 180_000);

    it("leaves the servers out of a run that opts out, and refuses a name the user has not configured", async () => {
      const sandbox = await alice.createSandbox();
      const started = await alice.call<Run>("POST", "/v1/runs", {
        agent: "claude",
        prompt: "say hello",
        sandboxId: sandbox,
        mcpServers: false,
      });
      const run = await waitForEnd(alice, started.body.id);
      expect(run.state, run.exitReason ?? "").toBe("succeeded");
      const config = await alice.call(
        "GET",
        `/v1/sandboxes/${sandbox}/files/content?path=.polydev/mcp/claude.json`,
      );
      expect(config.status).toBe(404);
      const unknown = await alice.call<{ error: { code: string; message: string } }>("POST", "/v1/runs", {
        agent: "claude",
        prompt: "say hello",
        sandboxId: sandbox,
        mcpServers: ["nope"],
      });
      expect(unknown.status).toBe(400);
      expect(unknown.body.error.message).toContain("nope");
    }, 180_000);
  },
);

describe.skipIf(!installed)(
  "MCP servers for the built-in agent, started in the sandbox through the agent connection (skipped when scripts/ensure.sh did not build the sandbox image)",
  () => {
    let fake: FakeProviders;
    let t: TestServer;
    let carol: ApiClient;
    const marker = `${MARKER}-builtin`;
    const crashMarker = `${MARKER}-crash`;

    /** Asks for the probe's (or the crasher's) tool when it is offered, then says it is done. */
    const script = (view: FakeRequestView): FakeTurn | undefined => {
      if (view.lastIsToolResult) return { text: "The tool answered." };
      const wanted = view.prompt.includes("use the probe")
        ? (name: string) => name.includes("probe") && name.endsWith("ping")
        : view.prompt.includes("use the crasher")
          ? (name: string) => name === "mcp__crasher__ping"
          : undefined;
      const tool = wanted && view.toolNames.find(wanted);
      return tool ? { toolCall: { tool, arguments: {} } } : { text: "Nothing to do." };
    };

    beforeAll(async () => {
      fake = await startFakeProviders({ script });
      t = await startTestServer({ upstreams: { anthropic: fake.url, openai: fake.url, gemini: fake.url } });
      carol = await createUser(t.api, "carol");
      for (const provider of ["anthropic", "openai", "gemini"])
        await carol.call("PUT", `/v1/credentials/${provider}`, { apiKey: "sk-real-provider-key-123456" });
      for (const server of [
        {
          name: "probe",
          command: "node",
          args: ["-e", PROBE_SERVER, marker],
          env: { PROBE_TOKEN: ENV_SECRET },
        },
        { name: "crasher", command: "node", args: ["-e", PROBE_SERVER, crashMarker, "crash"] },
        { name: "ghost", command: "polydev-no-such-command" },
        // Prints a 5 MiB line: past the transport's bound, so it is killed, not held.
        {
          name: "flooder",
          command: "node",
          args: [
            "-e",
            'process.stdout.write("x".repeat(5 * 1024 * 1024)); setInterval(() => {}, 1000);',
            `${MARKER}-flood`,
          ],
        },
      ]) {
        const created = await carol.call("POST", "/v1/mcp-servers", server);
        expect(created.status, JSON.stringify(created.body)).toBe(201);
      }
    }, 120_000);
    afterAll(async () => {
      await t?.close();
      await fake?.close();
    });

    const events = async (id: string) =>
      readSse(
        await fetch(`${t.url}/v1/runs/${id}/events`, { headers: { authorization: `Bearer ${carol.key}` } }),
      );
    const serversRunning = async (sandbox: string) =>
      (
        await carol.exec(sandbox, [
          "/bin/sh",
          "-c",
          `ps -eo stat=,args= | grep -v '^Z' | grep -c '[p]olydev-mcp-marker' || true`,
        ])
      ).body.stdout.trim();

    it.each([
      ["anthropic", undefined],
      ["openai", "gpt-test"],
      ["gemini", "gemini-2.5-flash"],
    ])(
      "the built-in agent (%s) starts the stdio server inside the sandbox, calls its tool and goes on without the one that cannot start",
      async (provider, model) => {
        const sandbox = await carol.createSandbox();
        fake.requests.length = 0;
        const started = await carol.call<Run>("POST", "/v1/runs", {
          agent: "builtin",
          prompt: "use the probe",
          sandboxId: sandbox,
          ...(model ? { model } : {}),
        });
        expect(started.status, JSON.stringify(started.body)).toBe(201);
        const run = await waitForEnd(carol, started.body.id);
        expect(run.state, run.exitReason ?? "").toBe("succeeded");
        expect(run.finalText).toBe("The tool answered.");
        expect(fake.requests.at(-1)?.provider).toBe(provider);

        // The server ran in the sandbox with its env, and nowhere on the host.
        const written = await carol.exec(sandbox, ["cat", marker]);
        expect(written.body.exitCode, written.body.stderr).toBe(0);
        expect(written.body.stdout).toContain(`secret=${ENV_SECRET.length}`);
        expect(written.body.stdout).toContain("called");
        expect(existsSync(marker)).toBe(false);

        // The model was offered the tool, and its answer went back in the next request.
        const sent = fake.requests.map((r) => JSON.stringify(r.body));
        expect(sent[0]).toContain("mcp__probe__ping");
        expect(sent.some((body) => body.includes("pong-from-the-sandbox"))).toBe(true);
        const stream = await events(run.id);
        const call = stream.find((e) => e.event === "tool_call");
        expect(JSON.stringify(call?.data)).toContain("mcp__probe__ping");
        const result = stream.find((e) => e.event === "tool_result");
        expect(result?.data).toMatchObject({ output: "pong-from-the-sandbox", isError: false });
        // The server whose command does not exist is reported and left out; the run went on.
        const problems = stream.filter((e) => e.event === "error").map((e) => JSON.stringify(e.data));
        expect(problems).toEqual(
          expect.arrayContaining([
            expect.stringContaining("MCP server ghost is left out of this turn: its command was not found"),
            expect.stringContaining(
              "MCP server flooder is left out of this turn: the MCP server sent a message longer than",
            ),
          ]),
        );
        expect(problems.join("\n")).not.toContain(ENV_SECRET);
        expect(sent[0]).not.toContain("mcp__ghost__");
        expect(sent[0]).not.toContain("mcp__flooder__");
        // The turn is over: its MCP server processes are gone.
        await expect.poll(() => serversRunning(sandbox), { timeout: 15_000 }).toBe("0");
      },
      180_000,
    );

    it("a server that exits in the middle of a call makes that call an error result; the run goes on, and a follow-up starts the servers again", async () => {
      const sandbox = await carol.createSandbox();
      fake.requests.length = 0;
      const started = await carol.call<Run>("POST", "/v1/runs", {
        agent: "builtin",
        prompt: "use the crasher",
        sandboxId: sandbox,
      });
      expect(started.status, JSON.stringify(started.body)).toBe(201);
      let run = await waitForEnd(carol, started.body.id);
      expect(run.state, run.exitReason ?? "").toBe("succeeded");
      const crashed = await carol.exec(sandbox, ["cat", crashMarker]);
      expect(crashed.body.stdout).toContain("crashing");
      const stream = await events(run.id);
      const result = stream.find((e) => e.event === "tool_result");
      expect(result?.data).toMatchObject({
        isError: true,
        output: "MCP tool mcp__crasher__ping failed: it exited (code 3)",
      });
      expect(run.finalText).toBe("The tool answered.");

      const followUp = await carol.call("POST", `/v1/runs/${run.id}/messages`, {
        prompt: "now use the probe",
      });
      expect(followUp.status, JSON.stringify(followUp.body)).toBe(202);
      run = await waitForEnd(carol, run.id);
      expect(run.state, run.exitReason ?? "").toBe("succeeded");
      const written = await carol.exec(sandbox, ["cat", marker]);
      expect(written.body.stdout).toContain("called");
      expect(fake.requests.some((r) => JSON.stringify(r.body).includes("pong-from-the-sandbox"))).toBe(true);
    }, 180_000);
  },
);
