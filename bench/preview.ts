/**
 * Preview URL benchmark: what reaching a web server in a sandbox through Polydev costs. The same
 * small app (the preview tests' python3 server) runs on the host, reached directly (the baseline),
 * and in a sandbox with no network, reached through the API form (`/v1/sandboxes/:id/ports/:port/`,
 * bearer key) and through the preview origin (a signed link's session path). Every request
 * through Polydev opens a fresh `forward.in` channel to the sandbox's loopback; that is the cost
 * measured. Sequential requests (latency), then one large download (throughput).
 */
import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PREVIEW_APP_PY } from "../packages/server/src/testing/preview-app.js";
import { startServerProcess } from "./server-process.js";
import type { Summary } from "./stats.js";
import { fmt, summarize, timeIt } from "./stats.js";

export interface PreviewBench {
  rows: { path: string; latency: Summary; downloadMs: number }[];
  /** A plain API call on the same sandbox (key check, sandbox lookup, no relay), for attribution. */
  apiCall: Summary;
  downloadBytes: number;
}

const SANDBOX_PORT = 8080;

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function waitFor(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let attempt = 0; attempt < 400; attempt++) {
    if (await check().catch(() => false)) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`${what} never became ready`);
}

async function measure(url: string, headers: Record<string, string>, rounds: number, downloadBytes: number) {
  const samples: number[] = [];
  // Warm-up: connections, the agent channel, python's first answer.
  for (let i = 0; i < 5; i++) await (await fetch(`${url}/hello`, { headers })).text();
  for (let i = 0; i < rounds; i++) {
    const { ms, value } = await timeIt(async () => (await fetch(`${url}/hello`, { headers })).text());
    if (!value.startsWith("hello")) throw new Error(`unexpected answer: ${value.slice(0, 200)}`);
    samples.push(ms);
  }
  const download = await timeIt(async () => {
    const answer = await fetch(`${url}/stream?n=${downloadBytes}`, { headers });
    return (await answer.arrayBuffer()).byteLength;
  });
  if (download.value !== downloadBytes) throw new Error(`download was ${download.value} bytes`);
  return { latency: summarize(samples), downloadMs: download.ms };
}

export async function benchPreview(options: { quick: boolean }): Promise<PreviewBench> {
  const rounds = options.quick ? 30 : 300;
  const downloadBytes = (options.quick ? 16 : 128) * 1024 * 1024;
  const dataDir = await mkdtemp(join(tmpdir(), "polydev-bench-preview-"));
  const appFile = join(dataDir, "preview-app.py");
  await writeFile(appFile, PREVIEW_APP_PY);
  const hostPort = await freePort();
  const direct = spawn("python3", [appFile, String(hostPort)], { stdio: "ignore" });
  const server = await startServerProcess(join(dataDir, "server"), { POLYDEV_IMAGES: "off" });
  let id = "";
  try {
    const auth = { authorization: `Bearer ${server.adminKey}` };
    const call = async (method: string, path: string, body?: unknown) => {
      const answer = await fetch(`${server.url}${path}`, {
        method,
        headers: { ...auth, ...(body === undefined ? {} : { "content-type": "application/json" }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      return (await answer.json()) as Record<string, unknown>;
    };
    const created = await call("POST", "/v1/sandboxes", { network: "none" });
    id = String(created.id);
    await fetch(`${server.url}/v1/sandboxes/${id}/files/content?path=preview-app.py`, {
      method: "PUT",
      headers: { ...auth, "content-type": "application/octet-stream" },
      body: PREVIEW_APP_PY,
    });
    await call("POST", `/v1/sandboxes/${id}/processes`, {
      cmd: ["python3", "/home/user/preview-app.py", String(SANDBOX_PORT)],
    });
    const apiForm = `${server.url}/v1/sandboxes/${id}/ports/${SANDBOX_PORT}`;
    await waitFor(async () => (await fetch(`${apiForm}/hello`, { headers: auth })).ok, "the sandbox's app");
    const directUrl = `http://127.0.0.1:${hostPort}`;
    await waitFor(async () => (await fetch(`${directUrl}/hello`)).ok, "the host's app");
    const link = await call("POST", `/v1/sandboxes/${id}/ports/${SANDBOX_PORT}/preview-link`, {});
    const entered = await fetch(String(link.url), { redirect: "manual" });
    const page = new URL(entered.headers.get("location") ?? "", String(link.url))
      .toString()
      .replace(/\/$/, "");

    const rows = [
      { path: "direct (same app on the host)", ...(await measure(directUrl, {}, rounds, downloadBytes)) },
      { path: "API form (bearer key)", ...(await measure(apiForm, auth, rounds, downloadBytes)) },
      { path: "preview origin (signed link)", ...(await measure(page, {}, rounds, downloadBytes)) },
    ];
    const apiSamples: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const { ms } = await timeIt(async () =>
        (await fetch(`${server.url}/v1/sandboxes/${id}`, { headers: auth })).text(),
      );
      apiSamples.push(ms);
    }
    return { rows, downloadBytes, apiCall: summarize(apiSamples) };
  } finally {
    direct.kill();
    // A stopped server leaves its sandboxes running (they outlive restarts): destroyed first.
    if (id !== "") {
      await fetch(`${server.url}/v1/sandboxes/${id}`, {
        method: "DELETE",
        headers: { authorization: `Bearer ${server.adminKey}` },
      }).catch(() => undefined);
    }
    await server.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
}

export function previewTable(result: PreviewBench): string {
  const base = result.rows[0];
  const mib = result.downloadBytes / (1024 * 1024);
  const lines = [
    `| path | GET p50 (ms) | GET p95 (ms) | p50 ratio to direct | ${mib} MiB download (MiB/s) |`,
    "|---|---|---|---|---|",
  ];
  for (const row of result.rows) {
    const ratio = base ? row.latency.p50 / base.latency.p50 : Number.NaN;
    lines.push(
      `| ${row.path} | ${fmt(row.latency.p50)} | ${fmt(row.latency.p95)} | ${ratio.toFixed(2)}x | ${(mib / (row.downloadMs / 1000)).toFixed(0)} |`,
    );
  }
  lines.push(
    "",
    `For attribution: a plain API call on the same sandbox (\`GET /v1/sandboxes/:id\`: key check and lookup, no relay) takes p50 ${fmt(result.apiCall.p50)} ms, p95 ${fmt(result.apiCall.p95)} ms.`,
  );
  return `${lines.join("\n")}\n`;
}
