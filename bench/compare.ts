/**
 * How soon a group's compare page has what it shows once the group's last agent has finished:
 * from the last `run.finished` event on `GET /v1/events` to the group's runs
 * (`GET /v1/runs?groupId=`) all final and every agent's changes (`GET /v1/runs/:id/changes`:
 * diff, files, check, cost) answered. The baseline is one `GET /v1/runs/:id` round trip made at
 * the same moment. Two built-in agents edit a real project in a real sandbox against the fake
 * providers. The dashboard's group page polls every 1.5 s while agents run, so a browser sees
 * the page ready up to that much later than this (not measured here).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startFakeProviders } from "@polydev/fake-providers";
import { startServerProcess } from "./server-process.js";
import type { Summary } from "./stats.js";
import { fmt, summarize } from "./stats.js";

const FINAL = ["succeeded", "failed", "cancelled", "timed_out"];

export interface CompareBenchRow {
  agents: number;
  ready: Summary;
  baseline: Summary;
}

/** Resolves when `run.finished` has arrived for every id, at the moment the last one did. */
function lastFinished(url: string, key: string, signal: AbortSignal): (ids: string[]) => Promise<number> {
  const finishedAt = new Map<string, number>();
  const waiters: (() => void)[] = [];
  const opened = fetch(`${url}/v1/events`, { headers: { authorization: `Bearer ${key}` }, signal }).then(
    async (response) => {
      if (!response.body) throw new Error("no event stream");
      const decoder = new TextDecoder();
      let buffered = "";
      for await (const chunk of response.body) {
        buffered += decoder.decode(chunk, { stream: true });
        let end = buffered.indexOf("\n\n");
        while (end >= 0) {
          const frame = buffered.slice(0, end);
          buffered = buffered.slice(end + 2);
          end = buffered.indexOf("\n\n");
          if (!frame.includes("event: run.finished")) continue;
          const data = /^data: (.*)$/m.exec(frame)?.[1];
          const runId = data ? (JSON.parse(data) as { data: { runId: string } }).data.runId : undefined;
          if (runId) finishedAt.set(runId, performance.now());
          for (const wake of waiters.splice(0)) wake();
        }
      }
    },
  );
  opened.catch(() => undefined);
  return async (ids) => {
    while (!ids.every((id) => finishedAt.has(id))) await new Promise<void>((wake) => waiters.push(wake));
    return Math.max(...ids.map((id) => finishedAt.get(id) ?? 0));
  };
}

/** Sandboxes outlive their server by design: this one is gone before the server stops. */
async function destroyAndWait(url: string, headers: Record<string, string>, id: string): Promise<void> {
  await fetch(`${url}/v1/sandboxes/${id}`, { method: "DELETE", headers }).catch(() => undefined);
  for (let attempt = 0; attempt < 300; attempt++) {
    const response = await fetch(`${url}/v1/sandboxes/${id}`, { headers }).catch(() => undefined);
    if (!response || response.status === 404) return;
    const { state } = (await response.json()) as { state?: string };
    if (state === "destroyed") return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export async function benchCompare(options: { quick: boolean }): Promise<CompareBenchRow[]> {
  const fake = await startFakeProviders();
  const dataDir = await mkdtemp(join(tmpdir(), "polydev-bench-compare-"));
  const server = await startServerProcess(dataDir, {
    POLYDEV_ANTHROPIC_BASE_URL: fake.url,
    POLYDEV_OPENAI_BASE_URL: fake.url,
    POLYDEV_GEMINI_BASE_URL: fake.url,
    POLYDEV_MODEL_PRICES: "*=3:15",
  });
  const headers = { authorization: `Bearer ${server.adminKey}`, "content-type": "application/json" };
  const api = async <T>(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: T }> => {
    const response = await fetch(`${server.url}${path}`, {
      method,
      headers,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: response.status, body: (await response.json()) as T };
  };
  const stream = new AbortController();
  let sandboxId: string | undefined;
  const rows: CompareBenchRow[] = [];
  try {
    await api("PUT", "/v1/credentials/anthropic", { apiKey: "sk-bench-key" });
    sandboxId = (await api<{ id: string }>("POST", "/v1/sandboxes", {})).body.id;
    await api("POST", `/v1/sandboxes/${sandboxId}/exec`, {
      cmd: ["/bin/sh", "-c", "mkdir -p app && echo one > app/README"],
    });
    const project = await api("POST", `/v1/sandboxes/${sandboxId}/projects`, { path: "app", check: "true" });
    if (project.status !== 201) throw new Error(`adding the project failed: ${JSON.stringify(project.body)}`);
    const waitFor = lastFinished(server.url, server.adminKey, stream.signal);
    const ready: number[] = [];
    const baseline: number[] = [];
    const rounds = options.quick ? 3 : 10;
    // The first round warms the sandbox and the caches; it is not counted.
    for (let round = 0; round <= rounds; round++) {
      const started = await api<{ groupId: string; runs: { id: string }[] }>("POST", "/v1/runs", {
        agents: ["builtin", "builtin"],
        // The fake's default script answers this with a shell call writing the file.
        prompt: `create file round-${round}.txt`,
        sandboxId,
        project: "projects/app",
      });
      if (started.status !== 201)
        throw new Error(`starting the group failed: ${JSON.stringify(started.body)}`);
      const ids = started.body.runs.map((r) => r.id);
      const finishedAt = await waitFor(ids);
      const probeStart = performance.now();
      await api("GET", `/v1/runs/${ids[0]}`);
      const probeMs = performance.now() - probeStart;
      for (;;) {
        const group = await api<{ items: { id: string; state: string }[] }>(
          "GET",
          `/v1/runs?groupId=${started.body.groupId}`,
        );
        const allFinal =
          group.body.items.length === ids.length && group.body.items.every((r) => FINAL.includes(r.state));
        const changes = await Promise.all(ids.map((id) => api("GET", `/v1/runs/${id}/changes`)));
        if (allFinal && changes.every((c) => c.status === 200)) break;
      }
      if (round > 0) {
        // The baseline round trip ran first; what the compare page needs is counted from the event.
        ready.push(performance.now() - finishedAt - probeMs);
        baseline.push(probeMs);
      }
    }
    rows.push({ agents: 2, ready: summarize(ready), baseline: summarize(baseline) });
  } finally {
    stream.abort();
    if (sandboxId !== undefined) await destroyAndWait(server.url, headers, sandboxId);
    await server.stop();
    await fake.close();
    await rm(dataDir, { recursive: true, force: true });
  }
  return rows;
}

export function compareTable(rows: CompareBenchRow[]): string {
  const lines = [
    "| agents | last run.finished → compare data ready p50 ms | p95 ms | one GET /v1/runs/:id p50 ms | ratio | rounds |",
    "|---|---|---|---|---|---|",
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.agents} | ${fmt(r.ready.p50)} | ${fmt(r.ready.p95)} | ${fmt(r.baseline.p50)} | ${fmt(r.ready.p50 / r.baseline.p50)} | ${r.ready.n} |`,
    );
  }
  return lines.join("\n");
}
