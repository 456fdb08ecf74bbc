import { sql } from "kysely";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openPostgresStore, postgresKysely, postgresPool } from "./postgres.js";
import { sharedTestPostgres, startTestPostgres, type TestPostgres } from "./testing/postgres-server.js";
import { runStoreContract } from "./testing/store-contract.js";

/** The database a test URL (`postgres://postgres@/<name>?host=<dir>`) names. */
const databaseOf = (url: string) => decodeURIComponent(/@\/([^?]+)/.exec(url)?.[1] ?? "");

let server: TestPostgres;
/** A database migrated once; each contract case gets a copy (the specifics below migrate anew). */
let migrated: string;
beforeAll(async () => {
  server = await sharedTestPostgres();
  const url = await server.createDatabase();
  await (await openPostgresStore({ url })).close();
  migrated = databaseOf(url);
});
afterAll(async () => {
  await server?.stop();
});

runStoreContract("postgres", async () =>
  openPostgresStore({ url: await server.createDatabase({ template: migrated }) }),
);

const user = (id: string) => ({ id, name: id, role: "user" as const, passwordHash: null, createdAt: 1 });

describe("postgres specifics", () => {
  it("keeps data across close and reopen, and two replicas opening together migrate it once", async () => {
    const url = await server.createDatabase();
    const [a, b] = await Promise.all([openPostgresStore({ url }), openPostgresStore({ url })]);
    await a.users.create({ ...user("usr_1"), role: "admin" });
    expect((await b.users.getById("usr_1"))?.role).toBe("admin");
    await Promise.all([a.close(), b.close()]);

    const reopened = await openPostgresStore({ url });
    expect((await reopened.users.getById("usr_1"))?.role).toBe("admin");
    await reopened.close();
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      const { rows } = await client.query("select name from kysely_migration order by name");
      expect(rows.map((r: { name: string }) => r.name)).toEqual([
        "001-initial",
        "002-credentials",
        "003-runs",
        "004-user-proxy",
        "005-sessions",
        "006-egress-policy",
        "007-sandbox-names",
        "008-images",
        "009-postgres-parity",
        "010-identity",
        "011-plans",
        "012-job-runs",
        "013-run-changes",
        "014-run-keeps",
        "015-run-conversations",
        "016-webhooks-mcp",
        "017-nodes",
        "019-usage-rollups",
        "020-logins",
      ]);
    } finally {
      await client.end();
    }
  });

  it("takes the URL's statement_timeout over the default, as the README tells operators", async () => {
    const db = postgresKysely(
      postgresPool({ url: `${await server.createDatabase()}&statement_timeout=100` }),
    );
    try {
      await expect(sql`select pg_sleep(5)`.execute(db)).rejects.toMatchObject({ code: "57014" });
    } finally {
      await db.destroy();
    }
  });

  it("cancels a statement that runs past the statement timeout", async () => {
    const db = postgresKysely(postgresPool({ url: await server.createDatabase(), statementTimeoutMs: 100 }));
    try {
      // 57014: query_canceled, raised by the server's statement_timeout.
      await expect(sql`select pg_sleep(5)`.execute(db)).rejects.toMatchObject({ code: "57014" });
      expect((await sql<{ one: number }>`select 1 as one`.execute(db)).rows).toEqual([{ one: 1 }]);
    } finally {
      await db.destroy();
    }
  });

  it("never holds more connections than its pool allows, however many queries wait", async () => {
    const db = postgresKysely(postgresPool({ url: await server.createDatabase(), maxConnections: 2 }));
    try {
      const seen = await Promise.all(
        Array.from({ length: 6 }, () =>
          sql<{ n: string }>`select count(*) as n from pg_stat_activity
            where datname = current_database() and application_name = 'polydev' and pg_sleep(0.05) is not null`.execute(
            db,
          ),
        ),
      );
      const counts = seen.map((r) => Number(r.rows[0]?.n));
      expect(Math.max(...counts)).toBeLessThanOrEqual(2);
      expect(Math.max(...counts)).toBeGreaterThanOrEqual(1);
    } finally {
      await db.destroy();
    }
  });

  it("follows the URL's sslmode: requiring TLS from a server without it fails instead of falling back", async () => {
    const url = `${await server.createDatabase()}&sslmode=require`;
    await expect(openPostgresStore({ url, connectTimeoutMs: 5000 })).rejects.toThrow(/SSL/i);
  });

  it("survives the server ending its idle connections: the error is reported, the next query reconnects", async () => {
    const url = await server.createDatabase();
    const idleErrors: Error[] = [];
    const store = await openPostgresStore({ url, onIdleError: (error) => idleErrors.push(error) });
    try {
      await store.users.create(user("usr_1"));
      const admin = new pg.Client({ connectionString: server.url("postgres") });
      await admin.connect();
      try {
        const { rowCount } = await admin.query(
          "select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and application_name = 'polydev'",
          [databaseOf(url)],
        );
        expect(rowCount).toBeGreaterThan(0);
      } finally {
        await admin.end();
      }
      await expect.poll(() => idleErrors.length, { timeout: 5000 }).toBeGreaterThan(0);
      expect((await store.users.getById("usr_1"))?.id).toBe("usr_1");
    } finally {
      await store.close();
    }
  });

  it("does not connect once its signal has aborted", async () => {
    const controller = new AbortController();
    const reason = new Error("shutting down");
    controller.abort(reason);
    await expect(
      openPostgresStore({ url: "postgres://nobody@127.0.0.1:1/none", signal: controller.signal }),
    ).rejects.toBe(reason);
  });
});

describe("postgres over TLS (a loopback port that takes only TLS)", () => {
  let tlsServer: TestPostgres;
  let tcp: NonNullable<TestPostgres["tcp"]>;
  beforeAll(async () => {
    tlsServer = await startTestPostgres({ tls: true });
    if (!tlsServer.tcp) throw new Error("the TLS server has no TCP address");
    tcp = tlsServer.tcp;
  });
  afterAll(async () => {
    await tlsServer?.stop();
  });

  it("connects with sslmode=verify-full against the CA named by sslrootcert, and the session is encrypted", async () => {
    const database = databaseOf(await tlsServer.createDatabase());
    const url = `${tcp.url(database)}&sslmode=verify-full&sslrootcert=${encodeURIComponent(tcp.caFile)}`;
    const store = await openPostgresStore({ url });
    await store.users.create(user("usr_tls"));
    expect((await store.users.getById("usr_tls"))?.id).toBe("usr_tls");
    await store.close();
    const db = postgresKysely(postgresPool({ url }));
    try {
      const { rows } = await sql<{
        ssl: boolean;
      }>`select ssl from pg_stat_ssl where pid = pg_backend_pid()`.execute(db);
      expect(rows).toEqual([{ ssl: true }]);
    } finally {
      await db.destroy();
    }
  });

  it("refuses a certificate no trusted CA signed, and the server refuses a connection without TLS", async () => {
    const database = databaseOf(await tlsServer.createDatabase());
    await expect(openPostgresStore({ url: `${tcp.url(database)}&sslmode=verify-full` })).rejects.toThrow(
      /self[- ]signed|certificate/i,
    );
    await expect(openPostgresStore({ url: `${tcp.url(database)}&sslmode=disable` })).rejects.toThrow(
      /no encryption|pg_hba/i,
    );
  });
});
