/**
 * The scale-out backends against the embedded ones, each beside its raw client in the same run:
 * a sandbox create (insert, then the creating → running transition) on SQLite and Postgres
 * against one raw single-row insert, sequential and 8 at a time; bus event delivery (publish to a
 * waiting subscriber) in-process and on Redis against one raw Redis round trip (PING).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openRedisBus } from "@polydev/bus-redis";
import { startTestRedis } from "@polydev/bus-redis/testing";
import { type Bus, InProcessBus, type NewSandbox, type Store } from "@polydev/core";
import { openPostgresStore, openSqliteStore } from "@polydev/store";
import { startTestPostgres } from "@polydev/store/testing/postgres";
import SqliteDatabase from "better-sqlite3";
import { Redis } from "ioredis";
import pg from "pg";
import type { Summary } from "./stats.js";
import { fmt, summarize, timeIt } from "./stats.js";

export interface StoreBusResults {
  store: {
    name: string;
    rawInsert: Summary;
    create: Summary;
    createsPerSecond: number;
    concurrentPerSecond: number;
  }[];
  bus: { name: string; baseline: Summary | undefined; delivery: Summary }[];
}

const sandbox = (id: string, at: number): NewSandbox => ({
  id,
  userId: "usr_bench",
  state: "creating",
  driver: "namespace",
  cpu: 1,
  memoryMb: 512,
  diskMb: 1024,
  pidsMax: 256,
  network: "none",
  egressPolicy: null,
  env: { A: "1" },
  metadata: {},
  timeoutMs: 60_000,
  idleTimeoutMs: 10_000,
  createdAt: at,
  expiresAt: at + 60_000,
});

async function measureStore(store: Store, rounds: number) {
  await store.users.create({
    id: "usr_bench",
    name: "bench",
    role: "user",
    passwordHash: null,
    createdAt: 1,
  });
  let n = 0;
  const createOne = async () => {
    n += 1;
    const id = `sbx_bench_${n}`;
    await store.sandboxes.insert(sandbox(id, n));
    await store.sandboxes.transition(id, ["creating"], "running", { at: n + 1 });
  };
  const samples: number[] = [];
  const started = performance.now();
  for (let i = 0; i < rounds; i++) samples.push((await timeIt(createOne)).ms);
  const sequentialMs = performance.now() - started;
  const concurrentStart = performance.now();
  for (let i = 0; i < rounds; i += 8) await Promise.all(Array.from({ length: 8 }, createOne));
  const concurrentMs = performance.now() - concurrentStart;
  return {
    create: summarize(samples),
    createsPerSecond: (rounds / sequentialMs) * 1000,
    concurrentPerSecond: (Math.ceil(rounds / 8) * 8 * 1000) / concurrentMs,
  };
}

async function measureDelivery(bus: Bus, rounds: number): Promise<Summary> {
  const controller = new AbortController();
  const subscription = await bus.subscribe("bench.delivery", { signal: controller.signal });
  const iterator = subscription[Symbol.asyncIterator]();
  const samples: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const { ms } = await timeIt(async () => {
      const next = iterator.next();
      await bus.publish("bench.delivery", String(i));
      await next;
    });
    samples.push(ms);
  }
  controller.abort();
  return summarize(samples);
}

export async function benchStoreBus(options: { quick: boolean }): Promise<StoreBusResults> {
  const rounds = options.quick ? 50 : 400;
  const results: StoreBusResults = { store: [], bus: [] };

  const dir = await mkdtemp(join(tmpdir(), "bench-store-"));
  const postgres = await startTestPostgres();
  const redis = await startTestRedis();
  try {
    const file = join(dir, "bench.db");
    const sqliteStore = await openSqliteStore({ file });
    const raw = new SqliteDatabase(file);
    raw.pragma("journal_mode = WAL");
    raw.pragma("synchronous = NORMAL");
    raw.exec("create table raw_bench (id integer primary key, body text)");
    const insert = raw.prepare("insert into raw_bench (body) values (?)");
    const rawSqlite: number[] = [];
    for (let i = 0; i < rounds; i++) rawSqlite.push((await timeIt(async () => insert.run("x"))).ms);
    raw.close();
    results.store.push({
      name: "SQLite file",
      rawInsert: summarize(rawSqlite),
      ...(await measureStore(sqliteStore, rounds)),
    });
    await sqliteStore.close();

    const url = await postgres.createDatabase();
    const pgStore = await openPostgresStore({ url });
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    await client.query("create table raw_bench (id bigserial primary key, body text)");
    const rawPg: number[] = [];
    for (let i = 0; i < rounds; i++) {
      rawPg.push((await timeIt(() => client.query("insert into raw_bench (body) values ($1)", ["x"]))).ms);
    }
    await client.end();
    results.store.push({
      name: "Postgres (unix socket)",
      rawInsert: summarize(rawPg),
      ...(await measureStore(pgStore, rounds)),
    });
    await pgStore.close();

    const inProcess = new InProcessBus();
    results.bus.push({
      name: "in-process",
      baseline: undefined,
      delivery: await measureDelivery(inProcess, rounds),
    });
    await inProcess.close();
    const ping = new Redis(redis.socket);
    const pings: number[] = [];
    for (let i = 0; i < rounds; i++) pings.push((await timeIt(() => ping.ping())).ms);
    ping.disconnect();
    const redisBus = await openRedisBus({ url: redis.socket });
    results.bus.push({
      name: "Redis (unix socket)",
      baseline: summarize(pings),
      delivery: await measureDelivery(redisBus, rounds),
    });
    await redisBus.close();
  } finally {
    await Promise.all([postgres.stop(), redis.stop(), rm(dir, { recursive: true, force: true })]);
  }
  return results;
}

export function storeBusTable(r: StoreBusResults): string {
  return [
    "| store | raw insert p50 ms | create p50 ms | p95 ms | vs raw p50 | creates/s (1 at a time) | creates/s (8 at a time) |",
    "|---|---|---|---|---|---|---|",
    ...r.store.map(
      (s) =>
        `| ${s.name} | ${fmt(s.rawInsert.p50)} | ${fmt(s.create.p50)} | ${fmt(s.create.p95)} | ${(s.create.p50 / s.rawInsert.p50).toFixed(2)}× | ${s.createsPerSecond.toFixed(0)} | ${s.concurrentPerSecond.toFixed(0)} |`,
    ),
    "",
    "A create is the store's two statements (insert, then the transition to running); the raw insert is one statement on the same database with its own client. Postgres here is the tests' server: fsync and synchronous commit off, so this compares query paths, not disks.",
    "",
    "| bus | raw round trip p50 ms | delivery p50 ms | p95 ms | vs raw p50 |",
    "|---|---|---|---|---|",
    ...r.bus.map(
      (b) =>
        `| ${b.name} | ${b.baseline ? fmt(b.baseline.p50) : "—"} | ${fmt(b.delivery.p50)} | ${fmt(b.delivery.p95)} | ${b.baseline ? `${(b.delivery.p50 / b.baseline.p50).toFixed(2)}×` : "—"} |`,
    ),
  ].join("\n");
}
