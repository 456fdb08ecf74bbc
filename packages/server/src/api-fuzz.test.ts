/**
 * API fuzzing as a test: a few thousand requests generated from `GET /v1/openapi.json` (see
 * testing/openapi-fuzz.ts), sent to a real server process with real sandboxes, aimed at real ids
 * so they reach the deep paths. Asserts: no 5xx, no request over 5 s, every 4xx in the error
 * shape, and the server's resident memory flat after a warm-up. Same seed, same requests.
 */

import { readFile } from "node:fs/promises";
import type { FakeProviders } from "@polydev/fake-providers";
import { startFakeProviders } from "@polydev/fake-providers";
import type { Dispatcher } from "undici";
import { Client } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import type { ChildServer } from "./testing/child-server.js";
import { removeDataDir, startChildServer } from "./testing/child-server.js";
import type { FuzzCase, FuzzTargets, OpenApiDocument } from "./testing/openapi-fuzz.js";
import { OpenApiFuzzer, operationsOf, Rng, rawCases } from "./testing/openapi-fuzz.js";
import { rawExchange } from "./testing/raw-http.js";
import { GOOD_CODE } from "./testing/stand-in-logins.js";

const SEED = 0x9_2026;
const PER_OPERATION = 64;
/** Operations whose valid requests start sandboxes or agents: fewer of them. */
const COSTLY = new Set([
  "POST /v1/sandboxes",
  "POST /v1/runs",
  "POST /v1/logins",
  "POST /v1/sandboxes/{id}/gateway",
]);
const PER_COSTLY_OPERATION = 16;
/** Values that get requests past "not found" and "wrong credentials" into the deep paths. */
function choices(t: FuzzTargets): Record<string, readonly unknown[]> {
  const existing = [".", "fz-dir", "fz-dir/fz-file"];
  return {
    // The stand-in gemini login CLI never prints a sign-in URL (it is there to test that
    // timeout), so a login with it answers only when the CLI gives up, 30 s later, by design.
    "POST /v1/logins provider": ["claude", "codex"],
    "POST /v1/logins/{id}/code code": [GOOD_CODE],
    "POST /v1/auth/session apiKey": [t.userKey],
    "GET /v1/sandboxes/{id}/files path": existing,
    "GET /v1/sandboxes/{id}/files/stat path": existing,
    "GET /v1/sandboxes/{id}/files/content path": existing,
    "DELETE /v1/sandboxes/{id}/files path": ["fz-dir/fz-file"],
  };
}
const CONCURRENCY = 4;
const MAX_ANSWER_MS = 5_000;
/** A request still unanswered after this long is given up (and reported as too slow). */
const ABANDON_MS = 15_000;
/** Streams (SSE, followed output, terminals) are read this long, then dropped. */
const STREAM_WINDOW_MS = 300;
const MIB = 1024 * 1024;
const RSS_GROWTH_LIMIT_BYTES = 64 * MIB;

let fake: FakeProviders;
let server: ChildServer;
let targets: FuzzTargets;

async function call<T>(
  method: string,
  path: string,
  key: string,
  body?: unknown,
): Promise<{ status: number; body: T }> {
  const response = await fetch(`${server.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${key}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  return { status: response.status, body: (text ? JSON.parse(text) : undefined) as T };
}

async function must<T>(method: string, path: string, key: string, body?: unknown): Promise<T> {
  const answer = await call<T>(method, path, key, body);
  if (answer.status >= 300)
    throw new Error(`${method} ${path}: ${answer.status} ${JSON.stringify(answer.body)}`);
  return answer.body;
}

/** Resident memory of the server process. */
async function serverRssBytes(): Promise<number> {
  const status = await readFile(`/proc/${server.process.pid}/status`, "utf8");
  const kib = /^VmRSS:\s+(\d+) kB/m.exec(status)?.[1];
  if (kib === undefined) throw new Error("no VmRSS for the server process");
  return Number(kib) * 1024;
}

beforeAll(async () => {
  // Fake providers on loopback: runs and credential checks never leave the machine.
  fake = await startFakeProviders();
  server = await startChildServer({
    config: { logLevel: "warn", upstreams: { anthropic: fake.url, openai: fake.url, gemini: fake.url } },
    standInLogins: true,
  });
  const admin = server.adminKey;
  const created = await must<{ user: { id: string }; apiKey: string }>("POST", "/v1/admin/users", admin, {
    name: "fuzz-user",
  });
  const userKey = created.apiKey;
  for (const provider of ["anthropic", "openai", "gemini"]) {
    await must("PUT", `/v1/credentials/${provider}`, userKey, { apiKey: `fz-demo-${provider}-key` });
  }
  const sandbox = await must<{ id: string }>("POST", "/v1/sandboxes", userKey, {});
  const spare = await must<{ id: string }>("POST", "/v1/sandboxes", userKey, {});
  // Silent on purpose: following the output of a process that prints nothing is a case too.
  const background = await must<{ id: string }>("POST", `/v1/sandboxes/${sandbox.id}/processes`, userKey, {
    cmd: "sleep 100000",
  });
  const run = await must<{ id: string }>("POST", "/v1/runs", userKey, {
    agent: "builtin",
    prompt: "say hello",
    sandboxId: sandbox.id,
  });
  for (let i = 0; i < 300; i++) {
    const state = (await must<{ state: string }>("GET", `/v1/runs/${run.id}`, userKey)).state;
    if (!["queued", "running"].includes(state)) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await must("POST", `/v1/sandboxes/${sandbox.id}/exec`, userKey, {
    cmd: "mkdir -p fz-dir && echo fuzz > fz-dir/fz-file",
  });
  const login = await must<{ id: string }>("POST", "/v1/logins", userKey, {
    provider: "claude",
    sandboxId: sandbox.id,
  });
  targets = {
    userKey,
    adminKey: admin,
    sandboxId: sandbox.id,
    spareSandboxId: spare.id,
    userId: created.user.id,
    processId: background.id,
    runId: run.id,
    loginId: login.id,
  };
}, 180_000);

afterAll(async () => {
  await server?.stop();
  if (server) await removeDataDir(server.dataDir);
  await fake?.close();
});

interface Outcome {
  fuzz: FuzzCase;
  status: number | undefined;
  /** Time to the status line; for answers that are not streams, to the last byte. */
  ms: number;
  contentType: string;
  body: string;
  /** No answer at all: the connection failed or closed first. */
  error: string | undefined;
}

function describeCase(fuzz: FuzzCase): string {
  return `${fuzz.operation} [${fuzz.mutation}] ${fuzz.method} ${fuzz.path.slice(0, 160)}`;
}

async function sendHttp(client: Client, fuzz: FuzzCase): Promise<Outcome> {
  const started = performance.now();
  // undici's own timeouts start only once the body is written; a server that never reads it
  // would otherwise hold the request forever.
  const deadline = AbortSignal.timeout(ABANDON_MS);
  try {
    const response = await client.request({
      signal: deadline,
      method: fuzz.method as Dispatcher.HttpMethod,
      path: fuzz.path,
      headers: fuzz.headers,
      ...(fuzz.body === undefined ? {} : { body: fuzz.body }),
      headersTimeout: ABANDON_MS,
      bodyTimeout: ABANDON_MS,
    });
    const headersMs = performance.now() - started;
    const contentType = String(response.headers["content-type"] ?? "");
    const streaming = /event-stream|octet-stream/.test(contentType);
    const window = streaming ? setTimeout(() => response.body.destroy(), STREAM_WINDOW_MS) : undefined;
    const kept: Buffer[] = [];
    let size = 0;
    try {
      for await (const chunk of response.body) {
        const buffer = chunk as Buffer;
        if (size < 64 * 1024) kept.push(buffer);
        size += buffer.length;
      }
    } catch {
      // A stream dropped at the end of its window.
    } finally {
      clearTimeout(window);
    }
    return {
      fuzz,
      status: response.statusCode,
      ms: streaming ? headersMs : performance.now() - started,
      contentType,
      body: Buffer.concat(kept).toString("utf8"),
      error: undefined,
    };
  } catch (error) {
    const code = typeof error === "object" && error !== null && "code" in error ? String(error.code) : "";
    const message = error instanceof Error ? error.message : String(error);
    return {
      fuzz,
      status: undefined,
      ms: performance.now() - started,
      contentType: "",
      body: "",
      error: `${code} ${message}`,
    };
  }
}

/** Opens the terminal, sends it junk, and closes; or reads the refusal. */
function sendWebSocket(fuzz: FuzzCase): Promise<Outcome> {
  const started = performance.now();
  return new Promise((resolve) => {
    let ws: WebSocket;
    try {
      ws = new WebSocket(`${server.url.replace("http", "ws")}${fuzz.path}`, { headers: fuzz.headers });
    } catch (error) {
      // The client refused the URL itself: nothing was sent.
      resolve({
        fuzz,
        ms: 0,
        status: undefined,
        contentType: "",
        body: "",
        error: `ws Invalid: ${String(error)}`,
      });
      return;
    }
    let done = false;
    const finish = (outcome: Omit<Outcome, "fuzz" | "ms">): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      ws.terminate();
      resolve({ fuzz, ms: performance.now() - started, ...outcome });
    };
    const timer = setTimeout(
      () => finish({ status: undefined, contentType: "", body: "", error: "no answer" }),
      ABANDON_MS,
    );
    ws.on("open", () => {
      ws.send(Buffer.from([0, 255, 27, 91, 65]));
      ws.send("not json");
      ws.send(JSON.stringify({ type: "resize", cols: 0, rows: 1e9 }));
      ws.send(JSON.stringify({ type: "input", data: "\u0000".repeat(1000) }));
      setTimeout(
        () => finish({ status: 101, contentType: "", body: "", error: undefined }),
        STREAM_WINDOW_MS,
      );
    });
    ws.on("unexpected-response", (_request, response) => {
      let body = "";
      response.on("data", (chunk: Buffer) => {
        body += chunk.toString();
      });
      response.on("end", () =>
        finish({
          status: response.statusCode,
          contentType: String(response.headers["content-type"] ?? ""),
          body,
          error: undefined,
        }),
      );
    });
    ws.on("error", (error) => {
      // A client-side refusal of an odd URL is not an answer of the server.
      finish({ status: undefined, contentType: "", body: "", error: `ws ${error.message}` });
    });
  });
}

/** Puts back what a successful request started, so sandboxes and agents do not pile up. */
async function undo(client: Client, outcome: Outcome): Promise<Outcome[]> {
  const { fuzz, status } = outcome;
  if (status === undefined || status >= 300) return [];
  let parsed: Record<string, unknown> = {};
  try {
    parsed = JSON.parse(outcome.body) as Record<string, unknown>;
  } catch {
    return [];
  }
  const headers = { authorization: fuzz.headers.authorization ?? `Bearer ${targets.userKey}` };
  const follow = (method: string, path: string): FuzzCase => ({
    operation: "cleanup",
    mutation: fuzz.operation,
    method,
    path,
    headers,
  });
  const undoing: FuzzCase[] = [];
  if (fuzz.operation === "POST /v1/sandboxes" && typeof parsed.id === "string") {
    undoing.push(follow("DELETE", `/v1/sandboxes/${parsed.id}`));
  }
  if (fuzz.operation === "POST /v1/runs") {
    const runs = Array.isArray(parsed.runs) ? parsed.runs : [parsed];
    for (const run of runs) {
      if (typeof run === "object" && run !== null && "id" in run && typeof run.id === "string") {
        undoing.push(follow("POST", `/v1/runs/${run.id}/cancel`));
      }
    }
  }
  if (fuzz.operation === "POST /v1/logins" && typeof parsed.id === "string") {
    undoing.push(follow("DELETE", `/v1/logins/${parsed.id}`));
  }
  const outcomes: Outcome[] = [];
  for (const next of undoing) outcomes.push(await sendHttp(client, next));
  return outcomes;
}

function problemsOf(outcome: Outcome): string[] {
  const problems: string[] = [];
  const { status } = outcome;
  if (
    outcome.error !== undefined &&
    !outcome.error.startsWith("UND_ERR_INVALID_ARG") &&
    !outcome.error.startsWith("ws Invalid")
  ) {
    problems.push(`no answer (${outcome.error})`);
  }
  if (status !== undefined && status >= 500)
    problems.push(`answered ${status}: ${outcome.body.slice(0, 300)}`);
  if (outcome.ms > MAX_ANSWER_MS) problems.push(`took ${Math.round(outcome.ms)} ms`);
  if (status !== undefined && status >= 400) {
    let shaped = false;
    try {
      const body = JSON.parse(outcome.body) as { error?: { code?: unknown; message?: unknown } };
      shaped = typeof body.error?.code === "string" && typeof body.error.message === "string";
    } catch {
      shaped = false;
    }
    if (!shaped || !outcome.contentType.startsWith("application/json")) {
      problems.push(
        `answered ${status} outside the error shape: ${outcome.contentType} ${outcome.body.slice(0, 200)}`,
      );
    }
  }
  return problems;
}

describe("API fuzzing", () => {
  it("answers generated requests without 5xx, hangs or unshaped errors, and keeps memory flat", async () => {
    const doc = await must<OpenApiDocument>("GET", "/v1/openapi.json", targets.userKey);
    const rng = new Rng(SEED);
    const fuzzer = new OpenApiFuzzer(doc, targets, rng, choices(targets));
    const operations = operationsOf(doc);
    const cases = operations.flatMap(({ method, path, operation }) =>
      fuzzer.casesFor(
        method,
        path,
        operation,
        COSTLY.has(`${method.toUpperCase()} ${path}`) ? PER_COSTLY_OPERATION : PER_OPERATION,
      ),
    );
    // Shuffled (with the same seed): the warm-up then covers every operation.
    for (let i = cases.length - 1; i > 0; i--) {
      const j = rng.int(0, i);
      [cases[i], cases[j]] = [cases[j] as FuzzCase, cases[i] as FuzzCase];
    }

    const outcomes: Outcome[] = [];
    let cleanups = 0;
    // One connection per worker: a request the server never answers holds up only its own.
    const runAll = async (batch: FuzzCase[]): Promise<void> => {
      let next = 0;
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          const client = new Client(server.url, { pipelining: 1 });
          while (next < batch.length) {
            const fuzz = batch[next++] as FuzzCase;
            const outcome = fuzz.websocket ? await sendWebSocket(fuzz) : await sendHttp(client, fuzz);
            outcomes.push(outcome);
            const undone = await undo(client, outcome);
            outcomes.push(...undone);
            cleanups += undone.length;
          }
          await client.destroy();
        }),
      );
    };

    const stillUp = (): void => {
      if (!server.alive())
        throw new Error(`the server died; its last words:\n${server.output().slice(-4000)}`);
    };
    const warmUp = Math.floor(cases.length / 4);
    await runAll(cases.slice(0, warmUp));
    stillUp();
    const rssAfterWarmUp = await serverRssBytes();
    await runAll(cases.slice(warmUp));
    stillUp();
    const rssAtEnd = await serverRssBytes();

    // Requests no client library sends, on bare sockets: an answer in the shape, or a close.
    const raw: string[] = [];
    for (const { name, bytes, answers = 1 } of rawCases(targets)) {
      const exchange = await rawExchange(server.url, [bytes], { expect: answers, waitMs: MAX_ANSWER_MS });
      if (exchange.timedOut)
        raw.push(`${name}: ${exchange.responses.length} of ${answers} answers, and no close`);
      for (const response of exchange.responses) {
        const problems = problemsOf({
          fuzz: { operation: "raw", mutation: name, method: "", path: "", headers: {} },
          status: response.status,
          ms: 0,
          contentType: response.headers["content-type"] ?? "",
          body: response.body,
          error: undefined,
        });
        if (problems.length > 0) raw.push(`${name}: ${problems.join("; ")}`);
      }
    }

    // The sandbox every request aimed at is still there and still works.
    const still = await call<{ stdout: string }>(
      "POST",
      `/v1/sandboxes/${targets.sandboxId}/exec`,
      targets.userKey,
      {
        cmd: "echo still-here",
      },
    );

    const byStatus = new Map<string, number>();
    const reachedSuccess = new Set<string>();
    for (const outcome of outcomes) {
      const key = String(outcome.status ?? "none");
      byStatus.set(key, (byStatus.get(key) ?? 0) + 1);
      if (outcome.status !== undefined && outcome.status < 300) reachedSuccess.add(outcome.fuzz.operation);
    }
    const failures = outcomes.flatMap((o) => problemsOf(o).map((p) => `${describeCase(o.fuzz)}: ${p}`));
    const total = outcomes.length + rawCases(targets).length;
    console.info(
      [
        `fuzz: ${total} requests (${outcomes.length - cleanups} generated, ${cleanups} clean-ups, ${rawCases(targets).length} raw) over ${operations.length} operations, seed ${SEED}`,
        `status counts: ${JSON.stringify(Object.fromEntries([...byStatus].sort()))}`,
        `operations with a 2xx/101: ${reachedSuccess.size}/${operations.length}; never: ${operations
          .map((o) => `${o.method.toUpperCase()} ${o.path}`)
          .filter((o) => !reachedSuccess.has(o))
          .join(", ")}`,
        `server RSS: ${Math.round(rssAfterWarmUp / MIB)} MiB after warm-up, ${Math.round(rssAtEnd / MIB)} MiB at the end`,
        `failures: ${failures.length + raw.length}`,
        ...failures.slice(0, 40),
        ...raw,
      ].join("\n"),
    );

    expect(failures.slice(0, 40)).toEqual([]);
    // Nothing escaped a request or stream on the server's side either.
    expect(await server.unhandledFaults()).toEqual([]);
    expect(raw).toEqual([]);
    expect(still.status).toBe(200);
    expect(still.body.stdout).toBe("still-here\n");
    // Most operations were reached with real ids, not just refused at validation.
    expect(reachedSuccess.size).toBeGreaterThan(operations.length * 0.6);
    expect(rssAtEnd - rssAfterWarmUp).toBeLessThan(RSS_GROWTH_LIMIT_BYTES);
  }, 600_000);
});
