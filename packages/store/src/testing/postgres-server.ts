/**
 * A real, throw-away Postgres for tests: Debian's server binaries, a cluster made by initdb in a
 * temp dir, listening only on a unix socket in that dir (no TCP port, so nothing else on the
 * machine, sandboxes included, can reach it). Postgres refuses to run as root, so under root it
 * runs as the `postgres` user. Each test asks for its own database, so cases never share rows.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { chmod, chown, mkdtemp, open, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { askTestBroker } from "@polydev/core/testing";
import pg from "pg";
import { makeTestCertificates } from "./test-certificates.js";

const run = promisify(execFile);
const POSTGRES_ROOT = "/usr/lib/postgresql";
const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;

export interface TestPostgres {
  /**
   * A new database on the server, as a URL for `openPostgresStore`: empty, or a copy of
   * `template` (a database no one is connected to), which is much faster than migrating anew.
   */
  createDatabase(options?: { template?: string }): Promise<string>;
  /** A URL for an existing database (e.g. "postgres", the maintenance one). */
  url(database: string): string;
  /** The directory holding the server's unix socket (mode 0700, the server user's). */
  socketDir: string;
  /** The cluster's files (tables, WAL), for tests that look for what must never be stored. */
  dataDir: string;
  /**
   * With `tls`: a URL over TCP to 127.0.0.1 with the superuser's password (the server takes
   * only TLS there), to which the test adds its own `sslmode`; `caFile` signed the server's
   * certificate (for `localhost` and 127.0.0.1).
   */
  tcp?: { url(database: string): string; caFile: string } | undefined;
  /** The server's log so far, for a failing test's message. */
  log(): Promise<string>;
  /** Fast shutdown, then the cluster's directory is removed (shared: nothing, see `attachTestPostgres`). */
  stop(): Promise<void>;
  description: TestPostgresDescription;
}

/** The newest installed major version's bin dir (Debian: /usr/lib/postgresql/<major>/bin). */
async function binDir(): Promise<string> {
  const versions = await readdir(POSTGRES_ROOT).catch(() => [] as string[]);
  const newest = versions
    .filter((v) => /^\d+$/.test(v))
    .sort((a, b) => Number(b) - Number(a))
    .at(0);
  if (newest === undefined) {
    throw new Error(
      `no Postgres server under ${POSTGRES_ROOT}: install Debian's postgresql (scripts/test.sh does)`,
    );
  }
  return join(POSTGRES_ROOT, newest, "bin");
}

/** Under root, the commands run as `postgres` via setpriv (which execs, so the pid is postgres's). */
function asServerUser(command: string, args: string[]): [string, string[]] {
  if (userInfo().uid !== 0) return [command, args];
  return ["setpriv", ["--reuid=postgres", "--regid=postgres", "--init-groups", "--", command, ...args]];
}

async function waitUntilReady(
  url: string,
  child: ChildProcess,
  logFile: string,
  spawnError: () => Error | undefined,
): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    const failed = spawnError();
    if (failed) throw new Error(`postgres did not start: ${failed.message}`, { cause: failed });
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`postgres exited while starting:\n${await readFile(logFile, "utf8")}`);
    }
    const client = new pg.Client({ connectionString: url });
    client.on("error", () => {});
    try {
      await client.connect();
      await client.end();
      return;
    } catch (error) {
      await client.end().catch(() => {});
      if (Date.now() > deadline) throw new Error(`postgres did not accept connections: ${String(error)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** What a test process needs to use a server another process started (see `sharedTestPostgres`). */
export interface TestPostgresDescription {
  socketDir: string;
  dataDir: string;
  port: number;
  logFile: string;
  tcp: { password: string; caFile: string } | undefined;
}

/** A handle on a running server; its `stop` does nothing (the process that started it stops it). */
export function attachTestPostgres(description: TestPostgresDescription): TestPostgres {
  const { socketDir, dataDir, port, logFile, tcp } = description;
  const url = (database: string) =>
    `postgres://postgres@/${encodeURIComponent(database)}?host=${encodeURIComponent(socketDir)}&port=${port}`;
  let databases = 0;
  return {
    url,
    socketDir,
    dataDir,
    description,
    tcp: tcp
      ? {
          url: (database) =>
            `postgres://postgres:${tcp.password}@localhost:${port}/${encodeURIComponent(database)}?connect_timeout=5`,
          caFile: tcp.caFile,
        }
      : undefined,
    async createDatabase(options = {}) {
      databases += 1;
      // The pid keeps names apart when several test processes share one server.
      const name = `test_${process.pid}_${databases}`;
      const admin = new pg.Client({ connectionString: url("postgres") });
      await admin.connect();
      try {
        const template = options.template === undefined ? "" : ` template "${options.template}"`;
        // FILE_COPY copies the template's files whole: quicker than WAL-logging each block.
        await admin.query(`create database "${name}"${template} strategy file_copy`);
      } finally {
        await admin.end();
      }
      return url(name);
    },
    log: () => readFile(logFile, "utf8"),
    stop: async () => {},
  };
}

export interface TestPostgresOptions {
  /** Also listen on a loopback TCP port that takes only TLS connections with a password. */
  tls?: boolean | undefined;
}

export async function startTestPostgres(options: TestPostgresOptions = {}): Promise<TestPostgres> {
  const bin = await binDir();
  const dir = await mkdtemp(join(tmpdir(), "polydev-pg-"));
  try {
    if (userInfo().uid === 0) await chown(dir, ...(await postgresIds()));
    const data = join(dir, "data");
    const password = randomBytes(12).toString("hex");
    const passwordFile = join(dir, "password");
    await writeFile(passwordFile, password, { mode: 0o600 });
    if (userInfo().uid === 0) await chown(passwordFile, ...(await postgresIds()));
    // ICU en-US collation on purpose: unlike SQLite's byte order it sorts "a" before "B", so the
    // contract suite would catch a query whose order depends on the database's collation.
    const initdb = asServerUser(join(bin, "initdb"), [
      `--pgdata=${data}`,
      "--auth-local=trust",
      "--auth-host=scram-sha-256",
      `--pwfile=${passwordFile}`,
      "--username=postgres",
      "--encoding=UTF8",
      "--locale=C.UTF-8",
      "--locale-provider=icu",
      "--icu-locale=en-US",
      "--no-sync",
    ]);
    await run(initdb[0], initdb[1], { env: { PATH: process.env.PATH ?? "/usr/bin:/bin", LANG: "C.UTF-8" } });

    const port = options.tls ? await freeLoopbackPort() : 5432;
    const tlsSettings = options.tls ? await tlsServerSettings(dir) : [];
    const logFile = join(dir, "postgres.log");
    const log = await open(logFile, "a");
    const server = asServerUser(join(bin, "postgres"), [
      "-D",
      data,
      "-k",
      dir,
      "-p",
      String(port),
      "-c",
      `listen_addresses=${options.tls ? "127.0.0.1" : ""}`,
      ...tlsSettings,
      // Test data is disposable: skip the disk flushes that dominate small transactions.
      "-c",
      "fsync=off",
      "-c",
      "synchronous_commit=off",
      "-c",
      "full_page_writes=off",
      "-c",
      "max_connections=200",
    ]);
    const child = spawn(server[0], server[1], {
      stdio: ["ignore", log.fd, log.fd],
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", LANG: "C.UTF-8" },
    });
    await log.close();
    let spawnError: Error | undefined;
    child.once("error", (error) => {
      spawnError = error;
    });
    // If the test process exits without stop(), the server must not outlive it.
    const killOnExit = () => child.kill("SIGQUIT");
    process.once("exit", killOnExit);

    const url = (database: string) =>
      `postgres://postgres@/${encodeURIComponent(database)}?host=${encodeURIComponent(dir)}&port=${port}`;
    await waitUntilReady(url("postgres"), child, logFile, () => spawnError).catch(async (error: unknown) => {
      child.kill("SIGKILL");
      throw error;
    });

    const description: TestPostgresDescription = {
      socketDir: dir,
      dataDir: data,
      port,
      logFile,
      tcp: options.tls ? { password, caFile: join(dir, "ca.pem") } : undefined,
    };
    return {
      ...attachTestPostgres(description),
      description,
      async stop() {
        process.off("exit", killOnExit);
        if (child.exitCode === null && child.signalCode === null) {
          const exited = once(child, "exit");
          child.kill("SIGINT"); // fast shutdown: disconnects clients, no waiting for them
          const timer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
          await exited;
          clearTimeout(timer);
        }
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

async function postgresIds(): Promise<[number, number]> {
  const { stdout } = await run("id", ["-u", "postgres"]);
  const { stdout: gid } = await run("id", ["-g", "postgres"]);
  return [Number(stdout.trim()), Number(gid.trim())];
}

/** Certificates owned by the server user (postgres refuses a key others can read), TLS-only TCP. */
async function tlsServerSettings(dir: string): Promise<string[]> {
  const certificates = await makeTestCertificates(dir);
  const hba = join(dir, "pg_hba.conf");
  await writeFile(hba, "local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\n");
  if (userInfo().uid === 0) {
    const ids = await postgresIds();
    for (const file of [certificates.keyFile, certificates.certFile, hba]) await chown(file, ...ids);
  }
  await chmod(certificates.keyFile, 0o600);
  return [
    "-c",
    "ssl=on",
    "-c",
    `ssl_cert_file=${certificates.certFile}`,
    "-c",
    `ssl_key_file=${certificates.keyFile}`,
    "-c",
    `hba_file=${hba}`,
  ];
}

/** A port the kernel just handed out and took back: free unless someone races for it. */
function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() =>
        typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port")),
      );
    });
  });
}

/**
 * The Vitest run's shared server (started by the run's broker on the first ask, stopped when the
 * run ends), or, outside that setup, one of this file's own. Either way call `stop` after use.
 */
export async function sharedTestPostgres(): Promise<TestPostgres> {
  const description = await askTestBroker<TestPostgresDescription>("postgres");
  return description ? attachTestPostgres(description) : startTestPostgres();
}
