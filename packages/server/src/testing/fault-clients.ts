/**
 * Clients for the fault-injection suites: each follows one long operation (an SSE stream, a raw
 * streamed body, a terminal) step by step, so a fault can be injected at a well-defined point,
 * and reports how the operation ended. Every wait is bounded.
 */
import { readdir, readFile } from "node:fs/promises";
import type { IncomingMessage } from "node:http";
import { request as httpRequest } from "node:http";
import Database from "better-sqlite3";
import WebSocket from "ws";
import type { ChildServer, HostFootprint } from "./child-server.js";
import { hostFootprint, hostLeftovers, until, within } from "./child-server.js";

export const FAULTS = ["destroy", "kill-init", "ttl", "close-agent"] as const;
export type Fault = (typeof FAULTS)[number];

/** Long enough to outlast any test, unique per call so the host can find that one process. */
let sleepSerial = 0;
export function uniqueSleep(): string {
  sleepSerial += 1;
  return `${86_400 + sleepSerial}.${process.pid % 1000}`;
}

/** Waits for a process of the sandbox (by host uid) whose command line contains every word. */
export async function waitForSandboxProcess(
  footprint: HostFootprint,
  words: string[],
  ms = 15_000,
): Promise<void> {
  await until(
    async () => {
      for (const entry of await readdir("/proc")) {
        if (!/^\d+$/.test(entry)) continue;
        const status = await readFile(`/proc/${entry}/status`, "utf8").catch(() => "");
        const uid = /^Uid:\s+(\d+)/m.exec(status)?.[1];
        if (Number(uid) !== footprint.hostUid) continue;
        const argv = (await readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => "")).split("\0");
        if (words.every((word) => argv.includes(word))) return true;
      }
      return false;
    },
    ms,
    `a process "${words.join(" ")}" in sandbox ${footprint.sandboxId}`,
  );
}

/**
 * Makes the sandbox's hard timeout due now, as if its TTL had run out, by writing its row as the
 * clock would have it; the server's own reconciler pass (a short `reconcileIntervalMs`) then
 * destroys it exactly as it destroys an expired sandbox.
 */
export function expireNow(server: ChildServer, sandboxId: string): void {
  const db = new Database(`${server.dataDir}/polydev.db`);
  try {
    db.pragma("busy_timeout = 5000");
    const changed = db
      .prepare("UPDATE sandboxes SET expires_at = ? WHERE id = ?")
      .run(Date.now() - 1, sandboxId);
    if (changed.changes !== 1) throw new Error(`no sandbox row ${sandboxId} to expire`);
  } finally {
    db.close();
  }
}

/** Injects one fault into a running sandbox. */
export async function inject(server: ChildServer, fault: Fault, footprint: HostFootprint): Promise<void> {
  const id = footprint.sandboxId;
  switch (fault) {
    case "destroy": {
      const response = await within(server.api.call("DELETE", `/v1/sandboxes/${id}`), 20_000, `DELETE ${id}`);
      if (response.status !== 200) throw new Error(`destroy answered ${response.status}`);
      return;
    }
    case "kill-init":
      process.kill(footprint.initPid, "SIGKILL");
      return;
    case "ttl": {
      expireNow(server, id);
      // The fault is the reconciler acting on the TTL: the operation goes on only once it has.
      let state = "running";
      await until(
        async () => {
          state = String((await server.api.call<{ state: string }>("GET", `/v1/sandboxes/${id}`)).body.state);
          return state !== "running";
        },
        10_000,
        `the reconciler to stop expired sandbox ${id}`,
      );
      return;
    }
    case "close-agent":
      await server.command(`close-agent ${id}`, new RegExp(`closed-agent ${id} \\d+`));
      return;
  }
}

/**
 * After a fault: the sandbox ends up where the fault leads (destroyed, or failed once the
 * reconciler noticed its init died; a sandbox that only lost its agent connection is destroyed
 * here), nothing of it is left on the host, and the server still answers.
 */
export async function assertCleanAfter(
  server: ChildServer,
  fault: Fault,
  footprint: HostFootprint,
): Promise<void> {
  const id = footprint.sandboxId;
  const expected = fault === "kill-init" ? "failed" : "destroyed";
  if (fault === "close-agent") {
    // Only the connection died: the server connects again on the next request.
    const again = await within(server.api.exec(id, "echo again"), 20_000, `exec on ${id} after close-agent`);
    if (again.status !== 200 || again.body.stdout !== "again\n") {
      throw new Error(`exec after close-agent answered ${again.status} ${JSON.stringify(again.body)}`);
    }
    const response = await within(server.api.call("DELETE", `/v1/sandboxes/${id}`), 20_000, `DELETE ${id}`);
    if (response.status !== 200) throw new Error(`destroy after close-agent answered ${response.status}`);
  }
  let state = "";
  await until(
    async () => {
      state = String((await server.api.call<{ state: string }>("GET", `/v1/sandboxes/${id}`)).body.state);
      return state === expected;
    },
    20_000,
    `sandbox ${id} to be ${expected} after ${fault} (it is ${state})`,
  );
  let left: string[] = [];
  await until(
    async () => {
      left = await hostLeftovers(footprint);
      return left.length === 0;
    },
    10_000,
    `nothing of sandbox ${id} left on the host after ${fault}; left: ${left.join(", ")}`,
  );
  await assertServing(server);
}

export async function assertServing(server: ChildServer): Promise<void> {
  if (!server.alive()) throw new Error(`the server process died: ${server.output().slice(-3000)}`);
  const health = await within(fetch(`${server.url}/healthz`), 5_000, "GET /healthz");
  if (health.status !== 200) throw new Error(`/healthz answered ${health.status}`);
}

export async function createWithFootprint(
  server: ChildServer,
  body: Record<string, unknown> = {},
): Promise<HostFootprint> {
  const id = await server.api.createSandbox(body);
  return hostFootprint(server.dataDir, id);
}

export interface SseEvent {
  event: string;
  data: unknown;
}

/** Reads a streamed response as it arrives: SSE events, or raw bytes. */
export class StreamReader {
  readonly events: SseEvent[] = [];
  bytes = 0;
  text = "";
  /** How the body ended: `end` (complete), or the error that cut it short. */
  readonly ended: Promise<{ how: "end" } | { how: "error"; error: unknown }>;
  private buffer = "";

  constructor(readonly response: Response) {
    this.ended = this.read();
  }

  static async open(server: ChildServer, path: string, init: RequestInit = {}): Promise<StreamReader> {
    const response = await within(
      fetch(`${server.url}${path}`, {
        ...init,
        headers: { authorization: `Bearer ${server.adminKey}`, ...(init.headers as Record<string, string>) },
      }),
      10_000,
      `the status line of ${path}`,
    );
    return new StreamReader(response);
  }

  private async read(): Promise<{ how: "end" } | { how: "error"; error: unknown }> {
    const body = this.response.body;
    if (!body) return { how: "end" };
    const decoder = new TextDecoder();
    try {
      for await (const chunk of body) {
        this.bytes += chunk.length;
        const text = decoder.decode(chunk, { stream: true });
        this.text += text.length > 65_536 ? "" : text;
        this.buffer += text;
        this.parseEvents();
      }
      return { how: "end" };
    } catch (error) {
      return { how: "error", error };
    }
  }

  private parseEvents(): void {
    let split = this.buffer.indexOf("\n\n");
    while (split >= 0) {
      const block = this.buffer.slice(0, split);
      this.buffer = this.buffer.slice(split + 2);
      let event = "message";
      let data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) event = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      if (data) {
        try {
          this.events.push({ event, data: JSON.parse(data) });
        } catch {
          this.events.push({ event, data });
        }
      }
      split = this.buffer.indexOf("\n\n");
    }
  }

  waitFor(check: () => boolean, what: string, ms = 15_000): Promise<void> {
    return until(check, ms, what);
  }

  /** The body must end (completely or cut short) within `ms`: never a hang. */
  finish(ms = 20_000): Promise<{ how: "end" } | { how: "error"; error: unknown }> {
    return within(this.ended, ms, `the end of ${this.response.url}`);
  }
}

/** A terminal WebSocket client that keeps its screen, control messages and how it closed. */
export class TerminalClient {
  screen = "";
  readonly controls: Record<string, unknown>[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;

  private constructor(readonly ws: WebSocket) {
    ws.on("message", (data, isBinary) => {
      if (isBinary) this.screen += data.toString();
      else this.controls.push(JSON.parse(data.toString()) as Record<string, unknown>);
    });
    this.closed = new Promise((resolveClose) => {
      ws.once("close", (code, reason) => resolveClose({ code, reason: reason.toString() }));
    });
    ws.on("error", () => undefined);
  }

  static async open(server: ChildServer, sandboxId: string, query = ""): Promise<TerminalClient> {
    const ws = new WebSocket(`${server.url.replace("http", "ws")}/v1/sandboxes/${sandboxId}/pty?${query}`, {
      headers: { authorization: `Bearer ${server.adminKey}` },
    });
    const terminal = new TerminalClient(ws);
    await within(
      new Promise<void>((resolveOpen, reject) => {
        ws.once("open", () => resolveOpen());
        ws.once("error", reject);
        ws.once("unexpected-response", (_request, response: IncomingMessage) =>
          reject(new Error(`the terminal upgrade answered ${response.statusCode}`)),
        );
      }),
      10_000,
      "the terminal WebSocket to open",
    );
    await until(
      () => terminal.controls.some((c) => c.type === "ready"),
      10_000,
      "the terminal's ready message",
    );
    return terminal;
  }

  /** The status a refused upgrade answered with (the WebSocket never opens). */
  static refusal(server: ChildServer, sandboxId: string, query = ""): Promise<number> {
    const ws = new WebSocket(`${server.url.replace("http", "ws")}/v1/sandboxes/${sandboxId}/pty?${query}`, {
      headers: { authorization: `Bearer ${server.adminKey}` },
    });
    return within(
      new Promise<number>((resolveStatus, reject) => {
        ws.once("unexpected-response", (_request, response: IncomingMessage) => {
          resolveStatus(response.statusCode ?? 0);
          response.resume();
          ws.terminate();
        });
        ws.once("open", () => {
          ws.terminate();
          reject(new Error("the terminal opened on a sandbox that is gone"));
        });
        ws.once("error", () => undefined);
      }),
      10_000,
      "the terminal upgrade's answer",
    );
  }

  type(text: string): void {
    this.ws.send(Buffer.from(text), { binary: true });
  }

  waitForScreen(text: string, ms = 15_000): Promise<void> {
    return until(
      () => this.screen.includes(text),
      ms,
      `"${text}" on the terminal; screen: ${this.screen.slice(-300)}`,
    );
  }
}

/**
 * A streaming upload the test drives: it sends `chunk`-sized pieces on demand, so a fault can land
 * after exactly N bytes have been taken by the server.
 */
export class Upload {
  readonly response: Promise<{ status: number; body: string } | { error: unknown }>;
  sent = 0;
  private readonly request;

  constructor(server: ChildServer, path: string) {
    const url = new URL(`${server.url}${path}`);
    this.request = httpRequest(url, {
      method: "PUT",
      agent: false,
      headers: { authorization: `Bearer ${server.adminKey}`, "content-type": "application/octet-stream" },
    });
    this.response = new Promise((resolveResponse) => {
      this.request.once("response", (response) => {
        let body = "";
        response.on("data", (chunk: Buffer) => {
          body += chunk.toString();
        });
        response.once("end", () => resolveResponse({ status: response.statusCode ?? 0, body }));
        response.once("error", (error) => resolveResponse({ error }));
      });
      this.request.once("error", (error) => resolveResponse({ error }));
    });
  }

  /** Sends `bytes` more and waits until the server has taken them (the socket drained). */
  async send(bytes: number, chunkBytes = 256 * 1024): Promise<void> {
    const chunk = Buffer.alloc(chunkBytes, 0x61);
    let left = bytes;
    while (left > 0 && !this.request.destroyed) {
      const piece = left >= chunk.length ? chunk : chunk.subarray(0, left);
      left -= piece.length;
      this.sent += piece.length;
      if (!this.request.write(piece)) {
        await within(
          new Promise<void>((resolveDrain) => {
            const done = (): void => {
              this.request.off("drain", done);
              this.request.off("close", done);
              resolveDrain();
            };
            this.request.once("drain", done);
            this.request.once("close", done);
          }),
          15_000,
          "the upload to drain",
        );
      }
    }
  }

  /** Keeps sending until the server answers or drops the connection; then ends the request. */
  async finish(ms = 20_000): Promise<{ status: number; body: string } | { error: unknown }> {
    let answered = false;
    const outcome = this.response.then((value) => {
      answered = true;
      return value;
    });
    const keepSending = (async () => {
      for (let round = 0; round < 64 && !answered && !this.request.destroyed; round++) {
        await this.send(256 * 1024).catch(() => undefined);
      }
      if (!this.request.destroyed) this.request.end();
    })();
    const result = await within(outcome, ms, "the upload's answer");
    await keepSending.catch(() => undefined);
    this.request.destroy();
    return result;
  }
}
