/**
 * The real server on a real Postgres and a real Redis: users, keys and sandboxes live in the
 * database named by `databaseUrl` and survive a restart, no SQLite file appears in the data
 * directory, and the server's bus is the Redis one named by `redisUrl`.
 */
import { access, readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { openRedisBus } from "@polydev/bus-redis";
import { sharedTestRedis, type TestRedis } from "@polydev/bus-redis/testing";
import { sharedTestPostgres, type TestPostgres } from "@polydev/store/testing/postgres";
import { Redis } from "ioredis";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SQLITE_FILE } from "./services/open-store.js";
import { ApiClient, createUser, startTestServer, type TestServer } from "./testing/harness.js";

/** Postgres and Redis together are replicas, which need the secret they sign forwarded requests with. */
const CLUSTER_SECRET = "test-cluster-secret-0123456789abcdef";

let postgres: TestPostgres;
let redis: TestRedis;
let t: TestServer;
let databaseUrl: string;

beforeAll(async () => {
  [postgres, redis] = await Promise.all([sharedTestPostgres(), sharedTestRedis()]);
  databaseUrl = await postgres.createDatabase();
  t = await startTestServer({ databaseUrl, redisUrl: redis.socket, clusterSecret: CLUSTER_SECRET });
});
afterAll(async () => {
  await t?.close();
  await Promise.all([postgres?.stop(), redis?.stop()]);
});

describe("a server on Postgres and Redis", () => {
  it("creates a user and a sandbox, restarts, and finds both (and its sandbox still running) in Postgres", async () => {
    const alice = await createUser(t.api, "alice");
    const id = await alice.createSandbox({ name: "pg-box" });
    expect((await alice.exec(id, "echo hello")).body.stdout).toBe("hello\n");

    // The rows are in Postgres, read with a client of our own, not through the server.
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    try {
      const { rows } = await client.query(
        "select s.id, s.state, s.name, u.name as owner from sandboxes s join users u on u.id = s.user_id",
      );
      expect(rows).toEqual([{ id, state: "running", name: "pg-box", owner: "alice" }]);
    } finally {
      await client.end();
    }
    await expect(access(join(t.dataDir, SQLITE_FILE))).rejects.toMatchObject({ code: "ENOENT" });

    // Escape probe: the sandbox sees neither the database's socket nor its URL.
    const socket = join(postgres.socketDir, ".s.PGSQL.5432");
    const probe = await alice.exec(id, [
      "sh",
      "-c",
      `ls -la ${postgres.socketDir}; test -e ${socket}; echo "exists=$?"; env`,
    ]);
    expect(probe.body.stdout).toContain("exists=1");
    expect(probe.body.stdout).not.toContain(postgres.socketDir.split("/").at(-1));
    expect(probe.body.stdout).not.toMatch(/postgres(ql)?:\/\//);

    await t.restart();
    const after = new ApiClient(t.url, alice.key);
    const listed = await after.call<{ items: { id: string; state: string; name: string }[] }>(
      "GET",
      "/v1/sandboxes",
    );
    expect(listed.status).toBe(200);
    expect(listed.body.items.map((s) => [s.id, s.state, s.name])).toEqual([[id, "running", "pg-box"]]);
    expect((await after.exec(id, "echo again")).body.stdout).toBe("again\n");
    const byName = await after.call<{ id: string }>("GET", "/v1/sandboxes/pg-box");
    expect(byName.body.id).toBe(id);

    const duplicate = await after.call<{ error: { code: string } }>("POST", "/v1/sandboxes", {
      name: "pg-box",
    });
    expect(duplicate.status).toBe(409);
    expect(duplicate.body.error.code).toBe("name_taken");
  });

  it("opens its bus on Redis: what it publishes, locks and counts is in Redis, where another replica sees it", async () => {
    const id = await t.server.bus.publish("replica.probe", "hello");
    const raw = new Redis(redis.socket);
    try {
      const entries = await raw.xrange("polydev:events:replica.probe", "-", "+");
      expect(entries).toEqual([[id, ["d", "hello"]]]);
      const lease = await t.server.bus.acquire("replica.lock", { ttlMs: 10_000 });
      expect(await raw.get("polydev:locks:replica.lock")).toBe(lease?.token);
      await lease?.release();
    } finally {
      raw.disconnect();
    }
  });

  it("carries the event stream through Redis: another replica's events reach a client here, in order and resumable", async () => {
    const dora = await createUser(t.api, "dora");
    const doraId = (await dora.call<{ id: string }>("GET", "/v1/me")).body.id;
    // Another replica: its own connection to the same Redis, publishing as the server does.
    const replica = await openRedisBus({ url: redis.socket });
    const controller = new AbortController();
    try {
      const response = await fetch(`${t.url}/v1/events`, {
        headers: { authorization: `Bearer ${dora.key}`, accept: "text/event-stream" },
        signal: controller.signal,
      });
      expect(response.status).toBe(200);
      const event = (n: number) =>
        JSON.stringify({ type: "quota.reached", at: n, userId: doraId, data: { n } });
      const first = await replica.publish(`events.user.${doraId}`, event(1));
      await replica.publish(`events.user.${doraId}`, event(2));
      const reader = response.body?.getReader();
      let text = "";
      while (reader && !text.includes('"n":2')) {
        const { value, done } = await reader.read();
        if (done) break;
        text += new TextDecoder().decode(value);
      }
      controller.abort();
      expect(text.indexOf('"n":1')).toBeGreaterThan(-1);
      expect(text.indexOf('"n":1')).toBeLessThan(text.indexOf('"n":2'));
      expect(text).toContain(`id: ${first}`);

      // And what this server reports (a sandbox's states) is in Redis for the other replicas.
      const box = await dora.createSandbox({ network: "none" });
      const raw = new Redis(redis.socket);
      try {
        await expect
          .poll(async () => (await raw.xrange(`polydev:events:events.user.${doraId}`, "-", "+")).length)
          .toBeGreaterThanOrEqual(4);
        const entries = await raw.xrange(`polydev:events:events.user.${doraId}`, "-", "+");
        expect(entries.map(([, fields]) => JSON.parse(String(fields[1])).data.sandboxId)).toContain(box);
      } finally {
        raw.disconnect();
      }
    } finally {
      controller.abort();
      await replica.close();
    }
  });

  it("keeps the Redis socket out of a sandbox's sight", async () => {
    const bob = await createUser(t.api, "bob");
    const id = await bob.createSandbox();
    const probe = await bob.exec(id, ["sh", "-c", `test -e ${redis.socket}; echo "exists=$?"; env`]);
    expect(probe.body.stdout).toContain("exists=1");
    expect(probe.body.stdout).not.toContain(redis.socket);
  });

  it("keeps a provider key sealed: neither its rows nor any file of the Postgres cluster holds the plaintext", async () => {
    const carol = await createUser(t.api, "carol");
    const secret = "sk-ant-api03-PG-PLAINTEXT-0123456789";
    expect((await carol.call("PUT", "/v1/credentials/anthropic", { apiKey: secret })).status).toBe(200);
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    try {
      const { rows } = await client.query("select * from credentials");
      expect(rows).toHaveLength(1);
      expect(JSON.stringify(rows)).not.toContain("PG-PLAINTEXT");
      // Everything committed reaches the cluster's files: tables and WAL.
      await client.query("checkpoint");
    } finally {
      await client.end();
    }
    const files = await readdir(postgres.dataDir, { recursive: true, withFileTypes: true });
    const needle = Buffer.from("PG-PLAINTEXT");
    let scanned = 0;
    for (const entry of files) {
      if (!entry.isFile()) continue;
      const bytes = await readFile(join(entry.parentPath, entry.name)).catch(() => Buffer.alloc(0));
      scanned += bytes.length;
      expect(bytes.includes(needle), join(entry.parentPath, entry.name)).toBe(false);
    }
    expect(scanned).toBeGreaterThan(1_000_000);
    // The probe itself can find what it looks for: the user's name is stored in the clear.
    const named = Buffer.from("carol");
    let found = false;
    for (const entry of files) {
      if (!entry.isFile()) continue;
      const bytes = await readFile(join(entry.parentPath, entry.name)).catch(() => Buffer.alloc(0));
      if (bytes.includes(named)) found = true;
    }
    expect(found).toBe(true);
  });
});
