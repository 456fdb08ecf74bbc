/**
 * Starts a real server (real SQLite file, real bubblewrap sandboxes) on a random loopback port
 * in a fresh data directory, and offers small typed helpers to call it.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NamespaceDriver } from "@polydev/driver-namespace";
import { TEST_IMAGE_CACHE_DIR } from "@polydev/images/testing";
import pino from "pino";
import type { ConfigInput } from "../config.js";
import { parseConfig } from "../config.js";
import { createLogger } from "../logger.js";
import type { RunningServer, StartOptions } from "../server.js";
import { startServer } from "../server.js";

export interface TestServer {
  server: RunningServer;
  url: string;
  adminKey: string;
  dataDir: string;
  /** Where the server's log lines go (JSON, one per line), for tests that inspect them. */
  logFile: string;
  api: ApiClient;
  /**
   * Stops the server without touching its sandboxes and starts a new one on the same data
   * directory and config (what an upgrade or a crash-free restart does); `server`, `url` and
   * `api` then name the new one.
   */
  restart(): Promise<void>;
  close(): Promise<void>;
}

export interface ApiResponse<T = Record<string, unknown>> {
  status: number;
  body: T;
  headers: Headers;
}

export class ApiClient {
  constructor(
    readonly url: string,
    readonly key: string,
  ) {}

  withKey(key: string): ApiClient {
    return new ApiClient(this.url, key);
  }

  async call<T = Record<string, unknown>>(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<ApiResponse<T>> {
    const init: RequestInit = { method, headers: { authorization: `Bearer ${this.key}`, ...headers } };
    if (body !== undefined) {
      init.body = typeof body === "string" ? body : JSON.stringify(body);
      (init.headers as Record<string, string>)["content-type"] ??= "application/json";
    }
    const response = await fetch(`${this.url}${path}`, init);
    const text = await response.text();
    let parsed: unknown = text;
    try {
      parsed = text.length > 0 ? JSON.parse(text) : undefined;
    } catch {
      parsed = text;
    }
    return { status: response.status, body: parsed as T, headers: response.headers };
  }

  /** Creates a sandbox and fails the test loudly if that did not work. */
  async createSandbox(body: Record<string, unknown> = {}): Promise<string> {
    const response = await this.call<{ id: string }>("POST", "/v1/sandboxes", body);
    if (response.status !== 201)
      throw new Error(`create failed: ${response.status} ${JSON.stringify(response.body)}`);
    return response.body.id;
  }

  async exec(id: string, cmd: string | string[], extra: Record<string, unknown> = {}) {
    return this.call<{
      exitCode: number | null;
      stdout: string;
      stderr: string;
      timedOut: boolean;
      signal: string | null;
    }>("POST", `/v1/sandboxes/${id}/exec`, { cmd, ...extra });
  }
}

export async function startTestServer(
  overrides: ConfigInput = {},
  options: Pick<StartOptions, "loginFlows" | "clock" | "images"> & {
    /** Drivers beside the namespace one (config `drivers` names which run). */
    drivers?: StartOptions["drivers"];
    /**
     * A replica joining a database another test server created (which made the admin): that
     * admin's key, since this start creates none.
     */
    replicaOfAdminKey?: string;
  } = {},
): Promise<TestServer> {
  const dataDir = await mkdtemp(join(tmpdir(), "polydev-test-"));
  const config = parseConfig({
    host: "127.0.0.1",
    port: 0,
    dataDir,
    logLevel: "silent",
    ...overrides,
    // Images (a storage pool per server, the default image) only where a test asks for them, with
    // the host-wide test cache of the default image and the toolbox (built once per run).
    images: { enabled: false, cacheDir: TEST_IMAGE_CACHE_DIR, ...overrides.images },
  });
  const logFile = join(dataDir, "test-server.log");
  const { drivers: extraDrivers, replicaOfAdminKey, ...startOptions } = options;
  const start = () =>
    startServer(config, {
      drivers: {
        ...extraDrivers,
        namespace: ({ rootDir, log, storage, toolbox }) =>
          new NamespaceDriver({
            rootDir,
            log,
            ...(storage === undefined ? {} : { storage }),
            ...(toolbox === undefined ? {} : { toolboxDir: toolbox }),
          }),
      },
      log: createLogger(config.logLevel, pino.destination({ dest: logFile, sync: true })),
      // The test runner fails on an unhandled rejection itself; the net would only log it.
      processSafetyNet: false,
      ...startOptions,
    });
  let server = await start();
  const adminKey = server.firstAdminKey?.apiKey ?? replicaOfAdminKey;
  if (!adminKey) throw new Error("a fresh data dir must create an admin key");
  const api = new ApiClient(server.url, adminKey);
  const test: TestServer = {
    server,
    url: server.url,
    adminKey,
    dataDir,
    logFile,
    api,
    async restart() {
      await server.close();
      server = await start();
      test.server = server;
      test.url = server.url;
      test.api = new ApiClient(server.url, adminKey);
    },
    async close() {
      const live = await server.store.sandboxes.listByStates([
        "creating",
        "running",
        "hibernated",
        "stopped",
        "failed",
        "destroying",
      ]);
      for (const sandbox of live) {
        if (sandbox.handle) await server.driver.destroy(sandbox.handle).catch(() => undefined);
      }
      await server.close();
      await server.storage?.close();
      // A mount point another mount namespace still holds for a moment (a sandbox of any test
      // file starting meanwhile copies every host mount) answers EBUSY: rm retries it.
      await rm(dataDir, { recursive: true, force: true, maxRetries: 50, retryDelay: 100 });
    },
  };
  return test;
}

/** The default image takes minutes to build the first time on a host (then it is cached). */
export const IMAGE_BUILD_TIMEOUT_MS = 20 * 60_000;

/** Waits until the image is ready (the default one is registered in the background at start). */
export async function waitForImage(
  api: ApiClient,
  name: string,
  timeoutMs = IMAGE_BUILD_TIMEOUT_MS,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const response = await api.call<{ state?: string; error?: string | null }>(
      "GET",
      `/v1/images/${encodeURIComponent(name)}`,
    );
    if (response.body.state === "ready") return;
    if (response.body.state === "failed") throw new Error(`image ${name} failed: ${response.body.error}`);
    if (Date.now() > deadline) throw new Error(`image ${name} is not ready after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** A second, non-admin user with its own key. */
export async function createUser(api: ApiClient, name: string): Promise<ApiClient> {
  const response = await api.call<{ apiKey: string }>("POST", "/v1/admin/users", { name });
  if (response.status !== 201) throw new Error(`user create failed: ${JSON.stringify(response.body)}`);
  return api.withKey(response.body.apiKey);
}

/** Reads an SSE response into events (the stream must end). */
export async function readSse(response: Response): Promise<{ event: string; data: unknown; id?: string }[]> {
  const text = await response.text();
  const events: { event: string; data: unknown; id?: string }[] = [];
  for (const block of text.split("\n\n")) {
    let event = "message";
    let data = "";
    let id: string | undefined;
    for (const line of block.split("\n")) {
      if (line.startsWith("event: ")) event = line.slice(7);
      else if (line.startsWith("data: ")) data += line.slice(6);
      else if (line.startsWith("id: ")) id = line.slice(4);
    }
    if (data) events.push({ event, data: JSON.parse(data), ...(id === undefined ? {} : { id }) });
  }
  return events;
}
