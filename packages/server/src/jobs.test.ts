/**
 * Background jobs across replicas, on a real Postgres and a real Redis: two servers sharing them
 * run a cluster-wide job once per interval, not once each; per-node jobs run on each; a job that
 * throws is recorded as failed and runs again; `GET /v1/admin/jobs` shows every last run.
 */
import { randomUUID } from "node:crypto";
import { openRedisBus, type RedisBus } from "@polydev/bus-redis";
import { sharedTestRedis, type TestRedis } from "@polydev/bus-redis/testing";
import { type Store, systemClock } from "@polydev/core";
import { openPostgresStore } from "@polydev/store";
import { sharedTestPostgres, type TestPostgres } from "@polydev/store/testing/postgres";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { JobRunner } from "./services/jobs.js";
import { ApiClient, startTestServer, type TestServer } from "./testing/harness.js";

/** Postgres and Redis together are replicas, which need the secret they sign forwarded requests with. */
const CLUSTER_SECRET = "test-cluster-secret-0123456789abcdef";

let postgres: TestPostgres;
let redis: TestRedis;
let databaseUrl: string;
let a: TestServer;
let b: TestServer;

beforeAll(async () => {
  [postgres, redis] = await Promise.all([sharedTestPostgres(), sharedTestRedis()]);
  databaseUrl = await postgres.createDatabase();
  // One after the other: the first start creates the admin in the shared database.
  a = await startTestServer({
    databaseUrl,
    redisUrl: redis.socket,
    clusterSecret: CLUSTER_SECRET,
    nodeName: "node-a",
  });
  b = await startTestServer(
    { databaseUrl, redisUrl: redis.socket, clusterSecret: CLUSTER_SECRET, nodeName: "node-b" },
    { replicaOfAdminKey: a.adminKey },
  );
});
afterAll(async () => {
  await b?.close();
  await a?.close();
  await Promise.all([postgres?.stop(), redis?.stop()]);
});

interface JobRunView {
  job: string;
  scope: "cluster" | "node";
  node: string;
  outcome: string;
  error: string | null;
  startedAt: string;
  endedAt: string | null;
}

async function listJobs(server: TestServer): Promise<JobRunView[]> {
  const response = await new ApiClient(server.url, a.adminKey).call<{ items: JobRunView[] }>(
    "GET",
    "/v1/admin/jobs",
  );
  expect(response.status).toBe(200);
  return response.body.items;
}

describe("jobs on two servers sharing Postgres and Redis", () => {
  it("runs a cluster-wide job on one server only, and shows its last run through either", async () => {
    const results = await Promise.all([
      a.server.jobs.runNow("audit-prune"),
      b.server.jobs.runNow("audit-prune"),
    ]);
    expect(results.sort()).toEqual(["ran", "skipped"]);
    // Within the interval, neither runs it again.
    expect(await a.server.jobs.runNow("audit-prune")).toBe("skipped");
    expect(await b.server.jobs.runNow("audit-prune")).toBe("skipped");

    for (const server of [a, b]) {
      const prune = (await listJobs(server)).filter((r) => r.job === "audit-prune");
      expect(prune).toHaveLength(1);
      expect(prune[0]).toMatchObject({ scope: "cluster", outcome: "succeeded", error: null });
      expect(["node-a", "node-b"]).toContain(prune[0]?.node);
      expect(Date.parse(prune[0]?.endedAt ?? "")).toBeGreaterThanOrEqual(
        Date.parse(prune[0]?.startedAt ?? ""),
      );
    }
  });

  it("runs a per-node job on each server, with a record per node", async () => {
    expect(await a.server.jobs.runNow("reconcile")).toBe("ran");
    expect(await b.server.jobs.runNow("reconcile")).toBe("ran");
    const reconcile = (await listJobs(a)).filter((r) => r.job === "reconcile");
    expect(reconcile.map((r) => [r.node, r.scope, r.outcome])).toEqual([
      ["node-a", "node", "succeeded"],
      ["node-b", "node", "succeeded"],
    ]);
  });

  it("folds usage older than its retention into hourly sums once, and the usage answer stays the same", async () => {
    const admin = await a.server.store.users.getByName("admin");
    if (!admin) throw new Error("the first start creates the admin");
    const sandboxId = `sbx_usage_${randomUUID()}`;
    const old = Date.now() - 72 * 60 * 60 * 1000;
    for (const inputTokens of [7, 11])
      await a.server.store.usage.record({
        userId: admin.id,
        sandboxId,
        provider: "rollup-test",
        model: "m",
        inputTokens,
        outputTokens: 1,
        status: 200,
        at: old,
      });
    const usage = async (server: TestServer) => {
      const response = await new ApiClient(server.url, a.adminKey).call<{ items: { provider: string }[] }>(
        "GET",
        "/v1/usage",
      );
      expect(response.status).toBe(200);
      return response.body.items.filter((item) => item.provider === "rollup-test");
    };
    const before = await usage(a);
    expect(before).toEqual([
      { provider: "rollup-test", model: "m", requests: 2, inputTokens: 18, outputTokens: 2 },
    ]);
    const results = await Promise.all([
      a.server.jobs.runNow("usage-rollup"),
      b.server.jobs.runNow("usage-rollup"),
    ]);
    expect(results.sort()).toEqual(["ran", "skipped"]);
    // Nothing raw is left of those hours: another fold finds nothing to do.
    expect(await a.server.store.usage.rollUp(Date.now() - 48 * 60 * 60 * 1000)).toBe(0);
    expect(await usage(b)).toEqual(before);
  });

  it("registers the periodic work as jobs and refuses the list to non-admins", async () => {
    // Sharing Postgres and Redis makes each server a node: the dead-nodes job comes with it.
    expect(a.server.jobs.names().sort()).toEqual([
      "audit-prune",
      "credential-validation",
      "dead-nodes",
      "expired-sessions",
      "reconcile",
      "stale-logins",
      "usage-rollup",
      "webhook-deliveries",
    ]);
    const anonymous = await new ApiClient(a.url, "pk_not_a_key").call("GET", "/v1/admin/jobs");
    expect(anonymous.status).toBe(401);
  });
});

describe("JobRunner on Postgres and Redis", () => {
  const log = pino({ level: "silent" });
  const opened: { store: Store; bus: RedisBus }[] = [];
  const runner = async (node: string, keyPrefix: string, url: string) => {
    const store = await openPostgresStore({ url });
    const bus = await openRedisBus({ url: redis.socket, keyPrefix });
    opened.push({ store, bus });
    return new JobRunner({ store, bus, clock: systemClock, node, log, leaseTtlMs: 600 });
  };
  afterAll(async () => {
    for (const { store, bus } of opened) {
      await bus.close();
      await store.close();
    }
  });

  it("records a failure (bounded), runs the job again next interval, and another replica takes it", async () => {
    const url = await postgres.createDatabase();
    const prefix = `jobs-test-${randomUUID()}:`;
    const [one, two] = [await runner("one", prefix, url), await runner("two", prefix, url)];
    let calls = 0;
    const flaky = {
      name: "flaky",
      scope: "cluster" as const,
      intervalMs: 300,
      async run() {
        calls += 1;
        if (calls === 1) throw new Error(`boom ${"x".repeat(10_000)}`);
      },
    };
    one.add(flaky);
    two.add(flaky);

    expect(await one.runNow("flaky")).toBe("ran");
    const [failed] = await one.lastRuns();
    expect(failed).toMatchObject({ job: "flaky", scope: "", node: "one", outcome: "failed" });
    expect(failed?.error?.startsWith("boom xxx")).toBe(true);
    expect(failed?.error?.length).toBe(2000);
    // The failed run was this interval's: the other replica does not repeat it at once.
    expect(await two.runNow("flaky")).toBe("skipped");
    expect(calls).toBe(1);

    await new Promise((resolve) => setTimeout(resolve, 320));
    expect(await two.runNow("flaky")).toBe("ran");
    expect(calls).toBe(2);
    expect(await one.lastRuns()).toEqual([
      expect.objectContaining({ job: "flaky", node: "two", outcome: "succeeded", error: null }),
    ]);
  });

  it("lets only the lease holder run a cluster job while it runs, and renews the lease past its TTL", async () => {
    const url = await postgres.createDatabase();
    const prefix = `jobs-test-${randomUUID()}:`;
    const [one, two] = [await runner("one", prefix, url), await runner("two", prefix, url)];
    let release = () => {};
    let calls = 0;
    const slow = {
      name: "slow",
      scope: "cluster" as const,
      intervalMs: 60_000,
      run: () => {
        calls += 1;
        return new Promise<void>((resolve) => {
          release = resolve;
        });
      },
    };
    one.add(slow);
    two.add(slow);
    const first = one.runNow("slow", { force: true });
    await expect.poll(() => calls).toBe(1);
    // Past the 600 ms lease TTL: renewals keep it, so even a forced run elsewhere is refused.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(await two.runNow("slow", { force: true })).toBe("skipped");
    expect((await two.lastRuns())[0]).toMatchObject({ outcome: "running", node: "one", endedAt: null });
    release();
    expect(await first).toBe("ran");
    expect(calls).toBe(1);
    // Released at the end: a forced run may take it now.
    const second = two.runNow("slow", { force: true });
    await expect.poll(() => calls).toBe(2);
    release();
    expect(await second).toBe("ran");
  });

  it("keeps running a scheduled job that throws every time, and stops cleanly", async () => {
    const url = await postgres.createDatabase();
    const one = await runner("one", `jobs-test-${randomUUID()}:`, url);
    let calls = 0;
    one.add({
      name: "always-fails",
      scope: "node",
      intervalMs: 50,
      async run() {
        calls += 1;
        throw new Error("still broken");
      },
    });
    one.start();
    await expect.poll(() => calls, { timeout: 5000 }).toBeGreaterThanOrEqual(3);
    await one.stop();
    const stoppedAt = calls;
    expect((await one.lastRuns())[0]).toMatchObject({
      scope: "one",
      outcome: "failed",
      error: "still broken",
    });
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(calls).toBe(stoppedAt);
  });
});
