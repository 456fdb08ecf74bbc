/**
 * A real, throw-away Redis for tests: Debian's redis-server with no TCP port (port 0 turns TCP
 * off), a unix socket of mode 0700 in a temp dir and no persistence. Sandboxes and other users
 * cannot reach it.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { access, mkdtemp, open, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { askTestBroker } from "@polydev/core/testing";
import { Redis } from "ioredis";

const REDIS_SERVER = "/usr/bin/redis-server";
const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;

export interface TestRedis {
  /** The socket path, which is also a connection "URL" for ioredis and `openRedisBus`. */
  socket: string;
  log(): Promise<string>;
  /** Stops the server and removes its directory (shared: nothing, see `attachTestRedis`). */
  stop(): Promise<void>;
  description: TestRedisDescription;
}

/** What a test process needs to use a server another process started. */
export interface TestRedisDescription {
  socket: string;
  logFile: string;
}

/** A handle on a running server; its `stop` does nothing (the process that started it stops it). */
export function attachTestRedis(description: TestRedisDescription): TestRedis {
  return {
    socket: description.socket,
    description,
    log: () => readFile(description.logFile, "utf8"),
    stop: async () => {},
  };
}

/**
 * The Vitest run's shared server (started by the run's broker on the first ask, stopped when the
 * run ends), or, outside that setup, one of this file's own. Either way call `stop` after use;
 * tests keep apart by key prefix.
 */
export async function sharedTestRedis(): Promise<TestRedis> {
  const description = await askTestBroker<TestRedisDescription>("redis");
  return description ? attachTestRedis(description) : startTestRedis();
}

export async function startTestRedis(): Promise<TestRedis> {
  await access(REDIS_SERVER).catch(() => {
    throw new Error(`no ${REDIS_SERVER}: install Debian's redis-server (scripts/test.sh does)`);
  });
  const dir = await mkdtemp(join(tmpdir(), "polydev-redis-"));
  const socket = join(dir, "redis.sock");
  const logFile = join(dir, "redis.log");
  let child: ChildProcess | undefined;
  try {
    const log = await open(logFile, "a");
    child = spawn(
      REDIS_SERVER,
      [
        "--port",
        "0",
        "--unixsocket",
        socket,
        "--unixsocketperm",
        "700",
        "--dir",
        dir,
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
      ],
      { stdio: ["ignore", log.fd, log.fd], env: { PATH: process.env.PATH ?? "/usr/bin:/bin" } },
    );
    await log.close();
    const server = child;
    let spawnError: Error | undefined;
    server.once("error", (error) => {
      spawnError = error;
    });
    const killOnExit = () => server.kill("SIGKILL");
    process.once("exit", killOnExit);
    await waitUntilReady(socket, server, logFile, () => spawnError);
    return {
      ...attachTestRedis({ socket, logFile }),
      async stop() {
        process.off("exit", killOnExit);
        if (server.exitCode === null && server.signalCode === null) {
          const exited = once(server, "exit");
          server.kill("SIGTERM");
          const timer = setTimeout(() => server.kill("SIGKILL"), STOP_TIMEOUT_MS);
          await exited;
          clearTimeout(timer);
        }
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    child?.kill("SIGKILL");
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

async function waitUntilReady(
  socket: string,
  server: ChildProcess,
  logFile: string,
  spawnError: () => Error | undefined,
): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    const failed = spawnError();
    if (failed) throw new Error(`redis-server did not start: ${failed.message}`, { cause: failed });
    if (server.exitCode !== null || server.signalCode !== null) {
      throw new Error(`redis-server exited while starting:\n${await readFile(logFile, "utf8")}`);
    }
    const ready = await access(socket).then(
      async () => {
        const client = new Redis(socket, {
          lazyConnect: true,
          maxRetriesPerRequest: 0,
          retryStrategy: () => null,
        });
        client.on("error", () => {});
        try {
          await client.connect();
          return (await client.ping()) === "PONG";
        } catch {
          return false;
        } finally {
          client.disconnect();
        }
      },
      () => false,
    );
    if (ready) return;
    if (Date.now() > deadline) throw new Error(`redis-server did not answer on ${socket}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
