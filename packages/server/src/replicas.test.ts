/**
 * Three real servers on this machine as replicas: one Postgres and one Redis (the test setup's),
 * their own data directories, one cluster secret. Clients alternate between them and every
 * answer must be the owning node's: a sandbox created through one is usable through the others
 * (exec, streamed uploads and downloads), a run started through one streams through another, a
 * terminal proxied through a replica that is SIGKILLed reattaches through a third, and the
 * sandboxes of a node that stopped answering are marked failed within the lease plus one refresh.
 * A forged internal header from outside is refused, and the secret is in no answer and no log.
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sharedTestRedis, type TestRedis } from "@polydev/bus-redis/testing";
import type { FakeProviders } from "@polydev/fake-providers";
import { startFakeProviders } from "@polydev/fake-providers";
import { sharedTestPostgres, type TestPostgres } from "@polydev/store/testing/postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { INTERNAL_HEADER, signInternalRequest } from "./http/internal-channel.js";
import {
  type ChildServer,
  hostFootprint,
  hostLeftovers,
  removeDataDir,
  startChildServer,
  until,
} from "./testing/child-server.js";
import { type ApiClient, createUser, readSse } from "./testing/harness.js";
import { startPreviewApp } from "./testing/preview-app.js";

const SECRET = randomBytes(32).toString("hex");
const MASTER_KEY = randomBytes(32).toString("hex");
const ADMIN_KEY = `pd_admin_${randomBytes(24).toString("hex")}`;
const REFRESH_MS = 300;
const LEASE_MS = 1500;
/**
 * What the servers promise: a dead node's sandboxes are failed within its lease plus three
 * refresh intervals (one for the job's period, two for the job lease the dead node may have held).
 */
const DEAD_NODE_BOUND_MS = LEASE_MS + 3 * REFRESH_MS;

let postgres: TestPostgres;
let redis: TestRedis;
let fake: FakeProviders;
const servers: Record<string, ChildServer> = {};
let user: Record<string, ApiClient>;
let userKey: string;

async function startNode(name: string, databaseUrl: string): Promise<ChildServer> {
  // The admin exists once the first replica started: the others are handed its key.
  const dataDir = await mkdtemp(join(tmpdir(), `polydev-replica-${name}-`));
  await writeFile(join(dataDir, "admin-api-key"), `${ADMIN_KEY}\n`, { mode: 0o600 });
  return startChildServer({
    dataDir,
    startTimeoutMs: 120_000,
    config: {
      databaseUrl,
      redisUrl: redis.socket,
      nodeName: name,
      clusterSecret: SECRET,
      masterKey: MASTER_KEY,
      adminKey: ADMIN_KEY,
      nodeRefreshIntervalMs: REFRESH_MS,
      nodeLeaseMs: LEASE_MS,
      logLevel: "info",
      upstreams: { anthropic: fake.url, openai: fake.url, gemini: fake.url },
    },
  });
}

interface SandboxView {
  id: string;
  state: string;
  node: string | null;
  failureReason: string | null;
}

const via = (node: string): ApiClient => {
  const client = user[node];
  if (!client) throw new Error(`no server ${node}`);
  return client;
};

async function sandbox(node: string, id: string): Promise<SandboxView> {
  return (await via(node).call<SandboxView>("GET", `/v1/sandboxes/${id}`)).body;
}

/** A GET with a request target fetch() would not send as it is; the whole answer as text. */
function rawGet(server: URL, target: string, key: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(Number(server.port), server.hostname, () => {
      socket.write(
        `GET ${target} HTTP/1.1\r\nhost: ${server.host}\r\nauthorization: Bearer ${key}\r\nconnection: close\r\n\r\n`,
      );
    });
    let text = "";
    socket.on("data", (chunk) => {
      text += chunk.toString();
    });
    socket.on("end", () => resolve(text));
    socket.on("error", reject);
  });
}

let onA: string;
let onB: string;

beforeAll(async () => {
  [postgres, redis, fake] = await Promise.all([
    sharedTestPostgres(),
    sharedTestRedis(),
    startFakeProviders(),
  ]);
  const databaseUrl = await postgres.createDatabase();
  servers.a = await startNode("node-a", databaseUrl);
  const alice = await createUser(servers.a.api, "alice");
  userKey = alice.key;
  // Made before the other replicas start: their start-up reconcile must leave it alone.
  onA = await alice.createSandbox({ name: "on-a" });
  const [b, c] = await Promise.all([startNode("node-b", databaseUrl), startNode("node-c", databaseUrl)]);
  servers.b = b;
  servers.c = c;
  user = Object.fromEntries(Object.entries(servers).map(([key, s]) => [key, s.api.withKey(userKey)]));
  await via("a").call("PUT", "/v1/credentials/anthropic", { apiKey: "demo-anthropic-key" });
}, 400_000);

afterAll(async () => {
  await Promise.all(Object.values(servers).map((s) => s.stop()));
  await Promise.all(Object.values(servers).map((s) => removeDataDir(s.dataDir)));
  await fake?.close();
  await Promise.all([postgres?.stop(), redis?.stop()]);
});

describe("replicas sharing Postgres and Redis", () => {
  it("leaves other nodes' sandboxes alone at start and places creates on the least loaded node", async () => {
    expect(await sandbox("b", onA)).toMatchObject({ state: "running", node: "node-a" });
    // node-a reserves memory for on-a: the next create through it goes to an idle node (ties
    // between node-b and node-c go by name).
    onB = await via("a").createSandbox({ name: "on-b" });
    const placed = await sandbox("c", onB);
    expect(placed.state).toBe("running");
    expect(placed.node).not.toBe("node-a");
    expect(placed.node).toBe("node-b");
  });

  it("answers for any sandbox through any replica: exec, streamed upload and download", async () => {
    for (const [client, id, host] of [
      ["c", onB, "node-b"],
      ["a", onB, "node-b"],
      ["b", onA, "node-a"],
      ["c", onA, "node-a"],
    ] as const) {
      const answer = await via(client).exec(id, "echo ok");
      expect(answer.status, `${client} → ${host}`).toBe(200);
      expect(answer.body.stdout).toBe("ok\n");
    }
    const bytes = randomBytes(3 * 1024 * 1024);
    const upload = await fetch(`${servers.c?.url}/v1/sandboxes/${onB}/files/content?path=big.bin`, {
      method: "PUT",
      headers: { authorization: `Bearer ${userKey}`, "content-type": "application/octet-stream" },
      body: bytes,
    });
    expect(upload.status).toBe(201);
    const download = await fetch(`${servers.a?.url}/v1/sandboxes/${onB}/files/content?path=big.bin`, {
      headers: { authorization: `Bearer ${userKey}` },
    });
    expect(download.status).toBe(200);
    const got = Buffer.from(await download.arrayBuffer());
    expect(createHash("sha256").update(got).digest("hex")).toBe(
      createHash("sha256").update(bytes).digest("hex"),
    );
    // By name too (names are the user's, resolved on the receiving replica).
    const byName = await via("c").exec("on-b", "echo by-name");
    expect(byName.body.stdout).toBe("by-name\n");
    // An admin's destroy through a replica that does not host it ends the processes on the
    // node that does.
    const doomed = await via("a").createSandbox({ name: "doomed" });
    const host = (await sandbox("a", doomed)).node;
    const owner = Object.values(servers).find((s) => s.dataDir.includes(`polydev-replica-${host}-`));
    const other = Object.entries(servers).find(([, s]) => s !== owner)?.[1];
    if (!owner || !other) throw new Error(`no servers for ${host}`);
    const footprint = await hostFootprint(owner.dataDir, doomed);
    const destroyed = await other.api.call("DELETE", `/v1/admin/sandboxes/${doomed}`);
    expect(destroyed.status).toBe(200);
    expect(await hostLeftovers(footprint)).toEqual([]);
    // The owner served it: its request log has it.
    const served = (await owner.logLines()).filter(
      (line) =>
        JSON.stringify(line).includes(`/v1/admin/sandboxes/${doomed}`) && line.msg === "incoming request",
    );
    expect(served.length).toBeGreaterThan(0);
    expect((await sandbox("c", doomed)).state).toBe("destroyed");
    // A foreign id stays a 404 through any replica.
    const bob = await createUser(servers.b?.api as ApiClient, "bob");
    const foreign = await bob.call("POST", `/v1/sandboxes/${onB}/exec`, { cmd: "id" });
    expect(foreign.status).toBe(404);
  });

  it("streams a run started through one replica through another", async () => {
    fake.setScript([
      {
        text: "Working on it.",
        toolCall: { tool: "run_command", arguments: { command: "sleep 1; echo slow-done" } },
      },
      { text: "Finished: slow-done." },
    ]);
    try {
      const run = await via("c").call<{ id: string }>("POST", "/v1/runs", {
        agent: "builtin",
        prompt: "run the slow thing",
        sandboxId: onB,
      });
      expect(run.status).toBe(201);
      const live = await fetch(`${servers.a?.url}/v1/runs/${run.body.id}/events`, {
        headers: { authorization: `Bearer ${userKey}` },
      });
      expect(live.status).toBe(200);
      expect(live.headers.get("content-type")).toMatch(/text\/event-stream/);
      const events = await readSse(live);
      const ids = events.map((e) => Number(e.id)).filter((n) => Number.isFinite(n));
      expect(ids.length).toBeGreaterThan(3);
      expect(ids).toEqual(ids.map((_, i) => i + 1));
      expect(JSON.stringify(events)).toContain("slow-done");
      const final = await via("b").call<{ state: string }>("GET", `/v1/runs/${run.body.id}`);
      expect(final.body.state).toBe("succeeded");
    } finally {
      fake.setScript(undefined);
    }
  });

  it("runs a login on its sandbox's node, whichever replica each request reaches", async () => {
    interface Login {
      id: string;
      state: string;
      url: string | null;
      reason: string | null;
    }
    // The real claude CLI prints its sign-in URL without a network; the URL lives only in the
    // memory of node-a, so seeing it through b and c shows the requests reached node-a.
    const started = await via("b").call<Login>("POST", "/v1/logins", { provider: "claude", sandboxId: onA });
    expect(started.status).toBe(201);
    expect(started.body.state).toBe("awaiting_user");
    expect(started.body.url).toMatch(/^https:\/\//);
    const seen = await via("c").call<Login>("GET", `/v1/logins/${started.body.id}`);
    expect(seen.body).toMatchObject({ state: "awaiting_user", url: started.body.url });
    // Any replica lists it from its row; the URL only node-a knows (it is kept in no database).
    const listed = await via("b").call<{ items: Login[] }>("GET", "/v1/logins");
    expect(listed.body.items.find((l) => l.id === started.body.id)).toMatchObject({ state: "awaiting_user" });
    const onOwner = await via("a").call<{ items: Login[] }>("GET", "/v1/logins");
    expect(onOwner.body.items.find((l) => l.id === started.body.id)).toMatchObject({ url: started.body.url });
    const twice = await via("c").call<{ error: { code: string } }>("POST", "/v1/logins", {
      provider: "claude",
      sandboxId: onB,
    });
    expect(twice.status).toBe(409);
    const events = fetch(`${servers.c?.url}/v1/logins/${started.body.id}/events`, {
      headers: { authorization: `Bearer ${userKey}` },
    }).then(readSse);
    await until(
      async () =>
        JSON.stringify(await servers.a?.logLines()).includes(`/v1/logins/${started.body.id}/events`),
      10_000,
      "node-a to serve the event stream",
    );
    const cancelled = await via("a").call<Login>("DELETE", `/v1/logins/${started.body.id}`);
    expect(cancelled.body.state).toBe("cancelled");
    expect((await events).map((e) => (e.data as Login).state)).toEqual(["awaiting_user", "cancelled"]);
    expect((await via("b").call<Login>("GET", `/v1/logins/${started.body.id}`)).body.state).toBe("cancelled");
  });

  it("serves a preview through another replica's preview origin, over the owner's internal port stream", async () => {
    await startPreviewApp(via("a"), onA, 8080);
    const made = await via("a").call<{ url: string }>(
      "POST",
      `/v1/sandboxes/${onA}/ports/8080/preview-link`,
      {},
    );
    expect(made.status).toBe(201);
    // The same link, opened on node-c's preview origin (one URL behind a load balancer would
    // reach any replica): the link's signature holds there, and the page comes from node-a.
    const previewOf = async (server: ChildServer) => {
      const line = (await server.logLines()).find((l) => l.msg === "preview listener ready");
      return String(line?.url ?? "");
    };
    const linkOnC = made.body.url.replace(
      await previewOf(servers.a as ChildServer),
      await previewOf(servers.c as ChildServer),
    );
    expect(linkOnC).not.toBe(made.body.url);
    const entered = await fetch(linkOnC, { redirect: "manual" });
    expect(entered.status).toBe(303);
    const page = new URL(entered.headers.get("location") ?? "", linkOnC);
    const hello = await fetch(new URL("hello/there", `${page.toString().replace(/\/?$/, "/")}`));
    expect(hello.status).toBe(200);
    expect(await hello.text()).toBe("hello from port 8080 path /hello/there");
    // node-a's agent connection carried it (these servers share a host, so node-c could
    // otherwise reach node-a's sandbox socket directly: the test proves it did not).
    const streams = (await servers.a?.logLines())?.filter(
      (l) =>
        l.msg === "incoming request" &&
        JSON.stringify(l).includes(`/v1/internal/sandboxes/${onA}/ports/8080/stream`),
    );
    expect(streams?.length).toBeGreaterThan(0);
    // Nothing listening on the port: the owner's refusal, not a hang or a 500.
    const closedPort = await via("a").call<{ url: string }>(
      "POST",
      `/v1/sandboxes/${onA}/ports/9/preview-link`,
      {},
    );
    const closedOnC = closedPort.body.url.replace(
      await previewOf(servers.a as ChildServer),
      await previewOf(servers.c as ChildServer),
    );
    const closedPage = new URL(
      (await fetch(closedOnC, { redirect: "manual" })).headers.get("location") ?? "",
      closedOnC,
    );
    expect((await fetch(closedPage)).status).toBe(502);
    // The internal stream is no route for clients, not even an admin with a valid key.
    const internal = await fetch(`${servers.a?.url}/v1/internal/sandboxes/${onA}/ports/8080/stream`, {
      headers: { authorization: `Bearer ${ADMIN_KEY}` },
    });
    expect(internal.status).toBe(404);
  });

  it("admits a user's creates against their plan one at a time across replicas", async () => {
    const admin = servers.a?.api as ApiClient;
    const carol = await createUser(admin, "carol");
    const me = (await carol.call<{ id: string }>("GET", "/v1/me")).body;
    expect((await admin.call("PUT", "/v1/admin/plans/two", { limits: { runningSandboxes: 2 } })).status).toBe(
      200,
    );
    expect((await admin.call("PUT", `/v1/admin/users/${me.id}/plan`, { plan: "two" })).status).toBe(200);
    // Six creates at once, two through each replica: only the plan's two may pass, whichever
    // replicas admit them (each counts the rows the others inserted under the user's lease).
    const answers = await Promise.all(
      ["a", "b", "c", "a", "b", "c"].map((node) =>
        servers[node]?.api
          .withKey(carol.key)
          .call<{ id?: string; error?: { code: string } }>("POST", "/v1/sandboxes", {
            memoryMb: 128,
          }),
      ),
    );
    const statuses = answers.map((answer) => answer?.status).sort();
    expect(statuses).toEqual([201, 201, 429, 429, 429, 429]);
    for (const answer of answers.filter((x) => x?.status === 429))
      expect(answer?.body.error?.code).toBe("quota_exceeded");
    for (const answer of answers.filter((x) => x?.status === 201))
      await carol.call("DELETE", `/v1/sandboxes/${answer?.body.id}`);
  });

  it("refuses a forged internal header from outside and never shows the secret", async () => {
    const url = `/v1/sandboxes/${onA}`;
    const admin = { userId: "usr_x", userName: "admin", role: "admin", keyId: undefined, session: undefined };
    const forged = [
      "v1.e30.bm9wZQ",
      signInternalRequest("a-wrong-secret-of-enough-length-000000", {
        principal: admin as never,
        method: "GET",
        url,
        from: "node-x",
        at: Date.now(),
      }),
      // Rightly signed, but for another request: it cannot be replayed elsewhere.
      signInternalRequest(SECRET, {
        principal: admin as never,
        method: "GET",
        url: "/v1/admin/users",
        from: "node-x",
        at: Date.now(),
      }),
    ];
    for (const header of forged) {
      for (const server of [servers.a, servers.b]) {
        const answer = await fetch(`${server?.url}${url}`, { headers: { [INTERNAL_HEADER]: header } });
        expect(answer.status).toBe(401);
        const body = (await answer.json()) as { error: { code: string; message: string } };
        expect(body.error.code).toBe("invalid_internal_signature");
        expect(JSON.stringify(body)).not.toContain(SECRET);
      }
    }
    // Rightly signed for this very request, as a replica would: accepted once, and the same header
    // sent again (captured off the wire) is refused on every replica.
    const me = (await via("a").call<{ id: string; name: string }>("GET", "/v1/me")).body;
    const genuine = signInternalRequest(SECRET, {
      principal: { userId: me.id, userName: me.name, role: "user", keyId: undefined, session: undefined },
      method: "GET",
      url,
      from: "node-c",
      at: Date.now(),
    });
    const first = await fetch(`${servers.a?.url}${url}`, { headers: { [INTERNAL_HEADER]: genuine } });
    expect(first.status).toBe(200);
    for (const server of [servers.a, servers.b]) {
      const replayed = await fetch(`${server?.url}${url}`, { headers: { [INTERNAL_HEADER]: genuine } });
      expect(replayed.status).toBe(401);
      expect(((await replayed.json()) as { error: { message: string } }).error.message).toContain(
        "already used",
      );
    }
    // With a valid API key too: the header wins and is refused (no mixing of the two).
    const mixed = await fetch(`${servers.c?.url}/v1/sandboxes`, {
      headers: { authorization: `Bearer ${userKey}`, [INTERNAL_HEADER]: forged[0] as string },
    });
    expect(mixed.status).toBe(401);
    // A request target naming another host (absolute form, or a path starting with //) never
    // makes a replica send anything there.
    let trapped = 0;
    const trap = createServer((_request, response) => {
      trapped += 1;
      response.end("trapped");
    });
    await new Promise<void>((resolve) => trap.listen(0, "127.0.0.1", resolve));
    const trapPort = (trap.address() as AddressInfo).port;
    try {
      const replica = new URL(servers.b?.url ?? "");
      for (const target of [
        `http://127.0.0.1:${trapPort}/v1/sandboxes/${onA}`,
        `//127.0.0.1:${trapPort}/v1/sandboxes/${onA}`,
      ]) {
        const answer = await rawGet(replica, target, userKey);
        expect(answer, target).not.toContain("trapped");
      }
      expect(trapped).toBe(0);
    } finally {
      trap.close();
    }
    for (const server of Object.values(servers)) {
      const lines = JSON.stringify(await server.logLines());
      expect(lines).not.toContain(SECRET);
      expect(server.output()).not.toContain(SECRET);
    }
  });

  it("reattaches a terminal through a third replica after the proxying one is SIGKILLed, and fails the dead node's sandboxes and runs", async () => {
    const reconnect = `replica-term-${randomBytes(4).toString("hex")}`;
    const open = async (server: ChildServer) => {
      const ws = new WebSocket(
        `${server.url.replace("http", "ws")}/v1/sandboxes/${onA}/pty?reconnect=${reconnect}`,
        { headers: { authorization: `Bearer ${userKey}` } },
      );
      const terminal = { ws, output: "", controls: [] as Record<string, unknown>[] };
      ws.on("message", (data, isBinary) => {
        if (isBinary) terminal.output += data.toString();
        else terminal.controls.push(JSON.parse(data.toString()) as Record<string, unknown>);
      });
      ws.on("error", () => undefined);
      await until(
        () => terminal.controls.some((c) => c.type === "ready"),
        15_000,
        "the terminal to be ready",
      );
      return terminal;
    };
    const first = await open(servers.b as ChildServer);
    expect(first.controls[0]).toMatchObject({ type: "ready", reattached: false });
    first.ws.send(Buffer.from("export MARK=kept-$$; echo set-$MARK\n"), { binary: true });
    await until(() => /set-kept-\d+/.test(first.output), 10_000, "the first command's output");
    const shellPid = /set-kept-(\d+)/.exec(first.output)?.[1];

    // A run busy in node-b's sandbox when node-b dies: failed with its sandbox.
    fake.setScript([
      { text: "Waiting.", toolCall: { tool: "run_command", arguments: { command: "sleep 600" } } },
      { text: "never reached" },
    ]);
    const run = await via("a").call<{ id: string }>("POST", "/v1/runs", {
      agent: "builtin",
      prompt: "wait for a long time",
      sandboxId: onB,
    });
    expect(run.status).toBe(201);
    const runState = async () =>
      (await via("c").call<{ state: string; exitReason: string | null }>("GET", `/v1/runs/${run.body.id}`))
        .body;
    await until(
      async () => (await runState()).state === "running",
      30_000,
      "the run to be running on node-b",
    );

    // A login whose CLI runs on node-b when node-b dies: failed with its node.
    const login = await via("c").call<{ id: string; state: string }>("POST", "/v1/logins", {
      provider: "claude",
      sandboxId: onB,
    });
    expect(login.body.state).toBe("awaiting_user");

    const closed = new Promise((resolve) => first.ws.once("close", resolve));
    await servers.b?.kill9();
    await closed;

    const second = await open(servers.c as ChildServer);
    expect(second.controls[0]).toMatchObject({ type: "ready", reattached: true });
    second.ws.send(Buffer.from("echo again-$MARK\n"), { binary: true });
    await until(() => second.output.includes(`again-kept-${shellPid}`), 10_000, "the same shell's output");
    second.ws.close();

    // node-b is dead: its sandbox is failed by a survivor, with the reason, within the bound.
    const killedAt = Date.now();
    await until(
      async () => (await sandbox("a", onB)).state === "failed",
      DEAD_NODE_BOUND_MS + 15_000,
      "node-b's sandbox to be marked failed",
    );
    const failed = await sandbox("c", onB);
    expect(failed.failureReason).toBe("node node-b stopped answering");
    process.stdout.write(
      `node-b's sandbox failed ${Date.now() - killedAt} ms after its SIGKILL (promised: ≤ ${DEAD_NODE_BOUND_MS} ms after its last refresh, plus the pass)\n`,
    );
    await until(async () => (await runState()).state === "failed", 10_000, "the run to be failed");
    expect((await runState()).exitReason).toBe("node node-b stopped answering");
    const lost = await via("a").call<{ state: string; reason: string }>("GET", `/v1/logins/${login.body.id}`);
    expect(lost.body).toMatchObject({ state: "failed", reason: "node node-b stopped answering" });
    fake.setScript(undefined);
    // The survivors' own sandboxes are untouched, and a dead node's row is still readable.
    expect(await sandbox("c", onA)).toMatchObject({ state: "running", node: "node-a" });
    const exec = await via("a").exec(onB, "true");
    expect(exec.status).toBe(409);
    for (const server of [servers.a, servers.c]) expect(await server?.unhandledFaults()).toEqual([]);
  });
});
