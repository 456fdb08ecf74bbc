/**
 * The API under load and events across replicas, each beside its baseline in the same run.
 * GET latency at a fixed request rate (autocannon, `overallRate`) on one `polydev up` with SQLite,
 * one with Postgres and Redis and two sharing them, against a bare node:http server answering a body of the same
 * size in its own process (what the machine and the load generator cost by themselves). Latencies
 * are autocannon's, in whole milliseconds. Event delivery: two
 * replicas on one Postgres and Redis; an event published on replica A (a `quota.reached`, which
 * needs no sandbox) is timed from its `at` to its arrival on replica B's `GET /v1/events`,
 * beside the same event's arrival on A's own stream. Forwarding: `GET /v1/sandboxes/:id` of a
 * sandbox on replica A, answered by A itself and through replica B (which relays it to A over the
 * signed internal channel), at the lighter rate: what the extra hop costs.
 */

import { spawn } from "node:child_process";
import { copyFile, mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startTestRedis } from "@polydev/bus-redis/testing";
import { startTestPostgres } from "@polydev/store/testing/postgres";
import autocannon from "autocannon";
import { type ServerProcess, startServerProcess } from "./server-process.js";
import { fmt, percentile } from "./stats.js";

export interface LoadResult {
  name: string;
  rate: number;
  requests: number;
  non2xx: number;
  errors: number;
  p50: number;
  p99: number;
  bodyBytes: number;
}

export interface ApiResults {
  load: LoadResult[];
  events: { name: string; p50: number; p99: number; n: number }[];
}

const RATE = 1000;
const LIGHT_RATE = 250;
const ADMIN_KEY_FILE = "admin-api-key";

async function load(
  name: string,
  url: string,
  key: string | undefined,
  seconds: number,
  rate = RATE,
): Promise<LoadResult> {
  const headers: Record<string, string> = key ? { authorization: `Bearer ${key}` } : {};
  const probe = await fetch(url, { headers });
  const bodyBytes = (await probe.arrayBuffer()).byteLength;
  if (probe.status !== 200) throw new Error(`${name}: GET answered ${probe.status}`);
  // Warm-up: JIT and lazy loads on both sides.
  await autocannon({ url, headers, connections: 50, overallRate: rate, duration: 2 });
  const result = await autocannon({ url, headers, connections: 50, overallRate: rate, duration: seconds });
  return {
    name,
    rate,
    requests: result.requests.total,
    non2xx: result.non2xx,
    errors: result.errors,
    p50: result.latency.p50,
    p99: result.latency.p99,
    bodyBytes,
  };
}

/**
 * A bare node:http server answering `bytes` of JSON: the floor under any API GET here. Its own
 * process, like the servers', so it does not share the load generator's event loop.
 */
async function rawServer(bytes: number): Promise<{ url: string; close(): Promise<void> }> {
  const body = `{"items":[],"pad":"${"x".repeat(Math.max(0, bytes - 21))}"}`;
  const code = `const body = ${JSON.stringify(body)};
    const server = require("node:http").createServer((_req, res) => {
      res.writeHead(200, { "content-type": "application/json; charset=utf-8" }).end(body);
    });
    server.listen(0, "127.0.0.1", () => process.stdout.write(server.address().port + "\\n"));`;
  const child = spawn(process.execPath, ["-e", code], { stdio: ["ignore", "pipe", "inherit"] });
  const port = await new Promise<string>((resolve, reject) => {
    child.stdout.once("data", (chunk: Buffer) => resolve(chunk.toString().trim()));
    child.once("exit", (status) => reject(new Error(`the raw server exited with ${status}`)));
  });
  return {
    url: `http://127.0.0.1:${port}/`,
    close: () =>
      new Promise((resolve) => {
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}

async function call(server: ServerProcess, method: string, path: string, body?: unknown, key?: string) {
  const response = await fetch(`${server.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${key ?? server.adminKey}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

/** Every `quota.reached` event's delay from its `at` to its arrival on this server's stream. */
async function collectEvents(server: ServerProcess, delays: number[], signal: AbortSignal): Promise<void> {
  const response = await fetch(`${server.url}/v1/events?all=1`, {
    headers: { authorization: `Bearer ${server.adminKey}`, accept: "text/event-stream" },
    signal,
  });
  const reader = response.body?.getReader();
  if (!reader) throw new Error("no event stream");
  const decoder = new TextDecoder();
  let buffered = "";
  try {
    for (;;) {
      const chunk = await reader.read();
      if (chunk.done) return;
      const arrived = Date.now();
      buffered += decoder.decode(chunk.value, { stream: true });
      let end = buffered.indexOf("\n\n");
      while (end >= 0) {
        const frame = buffered.slice(0, end);
        buffered = buffered.slice(end + 2);
        const data = frame.split("\n").find((line) => line.startsWith("data: "));
        if (data) {
          const event = JSON.parse(data.slice(6)) as { type: string; at: number };
          if (event.type === "quota.reached") delays.push(arrived - event.at);
        }
        end = buffered.indexOf("\n\n");
      }
    }
  } catch (error) {
    if (!signal.aborted) throw error;
  }
}

async function eventLatency(a: ServerProcess, b: ServerProcess, rounds: number) {
  // A plan nobody can create a sandbox on: each new user's first create is refused with a 429
  // and publishes one `quota.reached` (at most one per user and limit a minute, hence new users).
  const plan = await call(a, "PUT", "/v1/admin/plans/bench-none", { limits: { runningSandboxes: 0 } });
  if (plan.status !== 200) throw new Error(`plan: ${JSON.stringify(plan.body)}`);
  const onA: number[] = [];
  const onB: number[] = [];
  const stop = new AbortController();
  const streams = [collectEvents(a, onA, stop.signal), collectEvents(b, onB, stop.signal)];
  await new Promise((resolve) => setTimeout(resolve, 300));
  for (let i = 0; i < rounds; i++) {
    const user = await call(a, "POST", "/v1/admin/users", { name: `bench-events-${i}` });
    const id = (user.body.user as { id: string } | undefined)?.id;
    const key = user.body.apiKey as string | undefined;
    if (!id || !key) throw new Error(`user: ${JSON.stringify(user.body)}`);
    await call(a, "PUT", `/v1/admin/users/${id}/plan`, { plan: "bench-none" });
    const refused = await call(a, "POST", "/v1/sandboxes", {}, key);
    if (refused.status !== 429) throw new Error(`expected a 429, got ${refused.status}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  await new Promise((resolve) => setTimeout(resolve, 300));
  stop.abort();
  await Promise.all(streams);
  return [
    {
      name: "same replica (A → A's stream)",
      p50: percentile(onA, 50),
      p99: percentile(onA, 99),
      n: onA.length,
    },
    {
      name: "across replicas (A → B's stream, Redis)",
      p50: percentile(onB, 50),
      p99: percentile(onB, 99),
      n: onB.length,
    },
  ];
}

/** One sandbox's GET on the node that hosts it, then through the other replica (forwarded). */
async function forwardingCost(a: ServerProcess, b: ServerProcess, seconds: number): Promise<LoadResult[]> {
  const created = await call(a, "POST", "/v1/sandboxes", { network: "none" });
  const id = created.body.id as string | undefined;
  const node = created.body.node as string | undefined;
  if (created.status !== 201 || !id)
    throw new Error(`create: ${created.status} ${JSON.stringify(created.body)}`);
  // Placement may pick either replica; "owner" is whichever hosts it.
  const [owner, other] = node === "bench-b" ? [b, a] : [a, b];
  try {
    const path = `/v1/sandboxes/${id}`;
    const local = await load(
      "GET /v1/sandboxes/:id on its node",
      `${owner.url}${path}`,
      a.adminKey,
      seconds,
      LIGHT_RATE,
    );
    const forwarded = await load(
      "GET /v1/sandboxes/:id through the other replica (forwarded)",
      `${other.url}${path}`,
      a.adminKey,
      seconds,
      LIGHT_RATE,
    );
    return [local, forwarded];
  } finally {
    await call(a, "DELETE", `/v1/sandboxes/${id}`);
  }
}

export async function benchApi(options: { quick: boolean }): Promise<ApiResults> {
  const seconds = options.quick ? 3 : 10;
  const rounds = options.quick ? 20 : 100;
  const dir = await mkdtemp(join(tmpdir(), "polydev-bench-api-"));
  const [postgres, redis] = await Promise.all([startTestPostgres(), startTestRedis()]);
  const started: ServerProcess[] = [];
  const quiet = { POLYDEV_IMAGES: "off" };
  try {
    const sqlite = await startServerProcess(join(dir, "sqlite"), quiet);
    started.push(sqlite);
    const path = "/v1/sandboxes";
    const sqliteLoad = await load("1 replica, SQLite", `${sqlite.url}${path}`, sqlite.adminKey, seconds);
    // Below the budget's rate too: where the curve bends on this machine.
    const sqliteLight = await load(
      "1 replica, SQLite",
      `${sqlite.url}${path}`,
      sqlite.adminKey,
      seconds,
      LIGHT_RATE,
    );
    const raw = await rawServer(sqliteLoad.bodyBytes);
    const rawLoad = await load("bare node:http, same body size", raw.url, undefined, seconds).finally(() =>
      raw.close(),
    );
    await sqlite.stop();
    started.pop();

    const shared = {
      ...quiet,
      POLYDEV_DATABASE_URL: await postgres.createDatabase(),
      POLYDEV_REDIS_URL: redis.socket,
      POLYDEV_CLUSTER_SECRET: "bench-cluster-secret-0123456789abcdef",
    };
    const a = await startServerProcess(join(dir, "a"), { ...shared, POLYDEV_NODE_NAME: "bench-a" });
    started.push(a);
    const pgLoad = await load("1 replica, Postgres + Redis", `${a.url}${path}`, a.adminKey, seconds);
    const pgLight = await load(
      "1 replica, Postgres + Redis",
      `${a.url}${path}`,
      a.adminKey,
      seconds,
      LIGHT_RATE,
    );
    // The second replica joins the first one's database: it creates no admin, so it is handed
    // the first one's key file (which `startServerProcess` reads).
    await mkdir(join(dir, "b"), { recursive: true, mode: 0o700 });
    await copyFile(join(dir, "a", ADMIN_KEY_FILE), join(dir, "b", ADMIN_KEY_FILE));
    const b = await startServerProcess(join(dir, "b"), { ...shared, POLYDEV_NODE_NAME: "bench-b" });
    started.push(b);
    // Both replicas at once, half the rate each: the worse replica's percentiles are reported
    // (two histograms' percentiles do not combine exactly).
    const [onA, onB] = await Promise.all([
      load("replica A", `${a.url}${path}`, a.adminKey, seconds, RATE / 2),
      load("replica B", `${b.url}${path}`, a.adminKey, seconds, RATE / 2),
    ]);
    const twoReplicas: LoadResult = {
      name: "2 replicas, Postgres + Redis (half each; worse replica's percentiles)",
      rate: RATE,
      requests: onA.requests + onB.requests,
      non2xx: onA.non2xx + onB.non2xx,
      errors: onA.errors + onB.errors,
      p50: Math.max(onA.p50, onB.p50),
      p99: Math.max(onA.p99, onB.p99),
      bodyBytes: onA.bodyBytes,
    };
    const events = await eventLatency(a, b, rounds);
    const forwarding = await forwardingCost(a, b, seconds);
    return { load: [rawLoad, sqliteLoad, sqliteLight, pgLoad, pgLight, twoReplicas, ...forwarding], events };
  } finally {
    for (const server of started.reverse()) await server.stop().catch(() => undefined);
    await Promise.all([postgres.stop(), redis.stop()]);
    await rm(dir, { recursive: true, force: true });
  }
}

export function apiTable(results: ApiResults): string {
  const rows = results.load.map(
    (r) =>
      `| ${r.name} | ${r.rate} | ${r.requests} | ${r.non2xx + r.errors} | ${r.bodyBytes} | ${fmt(r.p50)} | ${fmt(r.p99)} |`,
  );
  const events = results.events.map((e) => `| ${e.name} | ${e.n} | ${fmt(e.p50)} | ${fmt(e.p99)} |`);
  return [
    "| GET /v1/sandboxes (unless named) | req/s | requests | failed | body bytes | p50 ms | p99 ms |",
    "|---|---|---|---|---|---|---|",
    ...rows,
    "",
    "Budget: GET p99 ≤ 10 ms at 1,000 req/s on one replica.",
    "",
    "| event delivery (publish `at` → arrival, ms clock) | events | p50 ms | p99 ms |",
    "|---|---|---|---|",
    ...events,
    "",
    "Budget: cross-replica event latency p50 ≤ 5 ms.",
  ].join("\n");
}
