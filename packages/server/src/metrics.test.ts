/**
 * Prometheus /metrics on a real server: scraped and parsed as a Prometheus would, the values
 * move with what users do, labels carry route patterns (never URLs), and the separate listener
 * serves metrics without a key while the API's /metrics stays admin-only.
 */
import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import type { FakeProviders } from "@polydev/fake-providers";
import { startFakeProviders } from "@polydev/fake-providers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApiClient, TestServer } from "./testing/harness.js";
import { createUser, startTestServer } from "./testing/harness.js";

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The text exposition format: `name{a="b",...} value` lines; comments skipped. */
function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) throw new Error(`not an exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const pair of (match[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
      labels[pair[1] as string] = pair[2] as string;
    samples.push({ name: match[1] as string, labels, value: Number(match[3]) });
  }
  return samples;
}

function sum(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  return samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((total, s) => total + s.value, 0);
}

let t: TestServer;
let fake: FakeProviders;
let alice: ApiClient;
let metricsUrl: string;

async function scrape(): Promise<Sample[]> {
  const response = await t.api.call<string>("GET", "/metrics");
  expect(response.status).toBe(200);
  expect(response.headers.get("content-type")).toContain("text/plain");
  return parseExposition(response.body);
}

beforeAll(async () => {
  fake = await startFakeProviders();
  t = await startTestServer({
    metricsListen: "127.0.0.1:0",
    upstreams: { anthropic: fake.url, openai: fake.url, gemini: fake.url },
  });
  metricsUrl = t.server.metricsUrl ?? "";
  alice = await createUser(t.api, "alice");
  await alice.call("PUT", "/v1/credentials/anthropic", { apiKey: "sk-metrics-test-key-123456" });
});
afterAll(async () => {
  await t?.close();
  await fake?.close();
});

describe("GET /metrics", () => {
  it("is for admins on the API port", async () => {
    expect((await alice.call("GET", "/metrics")).status).toBe(403);
    expect((await fetch(`${t.url}/metrics`)).status).toBe(401);
  });

  it("counts users, sandboxes by state and driver, creates with their latency, execs and requests", async () => {
    const before = await scrape();
    expect(sum(before, "polydev_users")).toBe(2);
    const id = await alice.createSandbox({ network: "none" });
    expect((await alice.exec(id, ["true"])).status).toBe(200);
    // A raw id in a URL must be labelled by its route pattern only.
    await alice.call("GET", `/v1/sandboxes/${id}`);
    await alice.call("GET", "/v1/no-such-route/abc123");

    const after = await scrape();
    expect(sum(after, "polydev_sandboxes", { state: "running", driver: "namespace" })).toBe(
      sum(before, "polydev_sandboxes", { state: "running", driver: "namespace" }) + 1,
    );
    expect(
      sum(after, "polydev_sandbox_creates_total", { driver: "namespace", outcome: "running" }) -
        sum(before, "polydev_sandbox_creates_total", { driver: "namespace", outcome: "running" }),
    ).toBe(1);
    expect(
      sum(after, "polydev_sandbox_create_duration_seconds_count", { outcome: "running" }) -
        sum(before, "polydev_sandbox_create_duration_seconds_count", { outcome: "running" }),
    ).toBe(1);
    expect(sum(after, "polydev_sandbox_create_duration_seconds_sum")).toBeGreaterThan(0);
    expect(sum(after, "polydev_execs_total", { mode: "buffered" })).toBe(
      sum(before, "polydev_execs_total", { mode: "buffered" }) + 1,
    );
    expect(
      sum(after, "polydev_http_request_duration_seconds_count", {
        method: "GET",
        route: "/v1/sandboxes/:id",
        status_code: "200",
      }),
    ).toBeGreaterThanOrEqual(1);
    const routes = new Set(after.map((s) => s.labels.route).filter((r) => r !== undefined));
    for (const route of routes) expect(route).not.toContain(id);
    expect(routes.has("unmatched")).toBe(true);
    expect(sum(after, "polydev_node_capacity", { resource: "cpus" })).toBeGreaterThan(0);
    expect(sum(after, "polydev_node_allocated", { resource: "memory_bytes" })).toBeGreaterThan(0);
  });

  it("counts finished runs by agent and state, and provider tokens by model", async () => {
    const sandbox = await alice.createSandbox();
    fake.setScript([{ text: "Done." }]);
    const started = await alice.call<{ id: string }>("POST", "/v1/runs", {
      agent: "builtin",
      prompt: "say done",
      sandboxId: sandbox,
    });
    expect(started.status).toBe(201);
    let state = "queued";
    for (let i = 0; i < 300 && (state === "queued" || state === "running"); i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      state = (await alice.call<{ state: string }>("GET", `/v1/runs/${started.body.id}`)).body.state;
    }
    fake.setScript(undefined);
    expect(state).toBe("succeeded");
    const samples = await scrape();
    expect(sum(samples, "polydev_runs_finished_total", { agent: "builtin", state: "succeeded" })).toBe(1);
    expect(sum(samples, "polydev_run_duration_seconds_count", { agent: "builtin" })).toBe(1);
    expect(sum(samples, "polydev_gateway_requests_total", { provider: "anthropic" })).toBeGreaterThanOrEqual(
      1,
    );
    expect(
      sum(samples, "polydev_gateway_tokens_total", { provider: "anthropic", direction: "output" }),
    ).toBeGreaterThan(0);
  });

  it("is served without a key on the metrics listener, and nothing else is", async () => {
    expect(metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const response = await fetch(`${metricsUrl}/metrics`);
    expect(response.status).toBe(200);
    expect(sum(parseExposition(await response.text()), "polydev_users")).toBe(2);
    expect((await fetch(`${metricsUrl}/v1/sandboxes`)).status).toBe(404);
    expect((await fetch(`${metricsUrl}/metrics`, { method: "POST" })).status).toBe(404);
  });

  it("has a Grafana dashboard that asks only for metrics the server exports", async () => {
    const dashboard = await readFile(
      resolve(import.meta.dirname, "../../../docs/grafana/polydev.json"),
      "utf8",
    );
    const asked = new Set(
      [...dashboard.matchAll(/polydev_[a-z_]+/g)].map((m) => m[0].replace(/_(bucket|count|sum)$/, "")),
    );
    expect(asked.size).toBeGreaterThan(10);
    const text = (await t.api.call<string>("GET", "/metrics")).body;
    const exported = new Set([...text.matchAll(/^# TYPE (\S+)/gm)].map((m) => m[1]));
    for (const name of asked) expect(exported, name).toContain(name);
  });
});
