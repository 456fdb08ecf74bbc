/**
 * Vitest global setup: a broker that starts Postgres and Redis the first time a test file asks
 * (askTestBroker in @polydev/core/testing), shares them with every file of the run, and stops
 * them when the run ends. A run whose files never ask starts nothing.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startTestRedis } from "@polydev/bus-redis/testing";
// The typing of `provide("polydevTestBroker", …)`: declared beside askTestBroker, on "vitest".
import type {} from "@polydev/core/testing";
import { startTestPostgres } from "@polydev/store/testing/postgres";
import type {} from "vitest";
import type { TestProject } from "vitest/node";

interface Started {
  description: unknown;
  stop(): Promise<void>;
}

const STARTERS: Record<string, () => Promise<Started>> = {
  postgres: async () => {
    const server = await startTestPostgres();
    return { description: server.description, stop: () => server.stop() };
  },
  redis: async () => {
    const server = await startTestRedis();
    return { description: server.description, stop: () => server.stop() };
  },
};

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const dir = await mkdtemp(join(tmpdir(), "polydev-test-broker-"));
  const socket = join(dir, "broker.sock");
  const started = new Map<string, Promise<Started>>();
  const broker = createServer((req, res) => {
    const name = decodeURIComponent(/^\/backends\/([^/]+)$/.exec(req.url ?? "")?.[1] ?? "");
    const start = STARTERS[name];
    if (req.method !== "POST" || !start) {
      res.writeHead(404).end(`no backend ${JSON.stringify(name)}`);
      return;
    }
    let starting = started.get(name);
    if (!starting) {
      starting = start();
      started.set(name, starting);
    }
    starting.then(
      (backend) =>
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(backend.description)),
      (error: unknown) => {
        started.delete(name); // the next ask tries again
        res.writeHead(500).end(String(error));
      },
    );
  });
  await new Promise<void>((resolve) => broker.listen(socket, resolve));
  project.provide("polydevTestBroker", socket);
  return async () => {
    await new Promise((resolve) => broker.close(resolve));
    const backends = await Promise.allSettled(started.values());
    await Promise.all(backends.map((b) => (b.status === "fulfilled" ? b.value.stop() : undefined)));
    await rm(dir, { recursive: true, force: true });
  };
}
