import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import type { ApiClient, TestServer } from "./testing/harness.js";
import { createUser, startTestServer } from "./testing/harness.js";

let t: TestServer;
let api: ApiClient;
let id: string;
beforeAll(async () => {
  t = await startTestServer();
  api = await createUser(t.api, "pty-user");
  id = await api.createSandbox();
});
afterAll(async () => {
  await t?.close();
});

/** A terminal client that accumulates screen output and control messages. */
class Terminal {
  output = "";
  controls: Record<string, unknown>[] = [];
  constructor(readonly ws: WebSocket) {
    ws.on("message", (data, isBinary) => {
      if (isBinary) this.output += data.toString();
      else this.controls.push(JSON.parse(data.toString()) as Record<string, unknown>);
    });
  }
  static async open(query: string): Promise<Terminal> {
    const ws = new WebSocket(`${t.url.replace("http", "ws")}/v1/sandboxes/${id}/pty?${query}`, {
      headers: { authorization: `Bearer ${api.key}` },
    });
    const terminal = new Terminal(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("error", reject);
    });
    await terminal.until(() => terminal.controls.some((c) => c.type === "ready"));
    return terminal;
  }
  type(text: string): void {
    this.ws.send(Buffer.from(text), { binary: true });
  }
  async until(check: () => boolean, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!check()) {
      if (Date.now() > deadline)
        throw new Error(`timed out; screen so far: ${JSON.stringify(this.output.slice(-500))}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
  async close(): Promise<void> {
    const closed = new Promise((resolve) => this.ws.once("close", resolve));
    this.ws.close();
    await closed;
  }
}

describe("terminal over WebSocket", () => {
  it("runs an interactive shell and resizes it", async () => {
    const term = await Terminal.open("cols=100&rows=30");
    term.type("echo $((40 + 2))\n");
    await term.until(() => term.output.includes("42"));
    term.ws.send(JSON.stringify({ type: "resize", cols: 120, rows: 40 }));
    term.type("stty size\n");
    await term.until(() => term.output.includes("40 120"));
    await term.close();
  });

  it("reattaches to the same shell with the same reconnect id after the connection drops", async () => {
    const reconnect = "reconnect-test-0001";
    const first = await Terminal.open(`reconnect=${reconnect}`);
    expect(first.controls[0]).toMatchObject({ type: "ready", reattached: false, reconnectId: reconnect });
    first.type("export MARK=kept-$$; echo set-$MARK\n");
    await first.until(() => /set-kept-\d+/.test(first.output));
    const shellPid = /set-kept-(\d+)/.exec(first.output)?.[1];
    first.ws.terminate();

    const second = await Terminal.open(`reconnect=${reconnect}`);
    expect(second.controls[0]).toMatchObject({ type: "ready", reattached: true });
    // The replayed screen shows what happened before the drop.
    await second.until(() => second.output.includes(`set-kept-${shellPid}`));
    second.type("echo again-$MARK\n");
    await second.until(() => second.output.includes(`again-kept-${shellPid}`));
    await second.close();

    const fresh = await Terminal.open("reconnect=another-session-1");
    expect(fresh.controls[0]).toMatchObject({ reattached: false });
    fresh.type("echo fresh-[$MARK]\n");
    await fresh.until(() => fresh.output.includes("fresh-[]"));
    await fresh.close();
  });

  it("reports the shell's exit and closes the socket", async () => {
    const term = await Terminal.open("reconnect=exit-test-0001");
    const closed = new Promise<number>((resolve) => term.ws.once("close", (code) => resolve(code)));
    term.type("exit 5\n");
    expect(await closed).toBe(1000);
    expect(term.controls.find((c) => c.type === "exit")).toMatchObject({ exitCode: 5 });
  });

  it("answers a bad control message with an error frame, not a crash", async () => {
    const term = await Terminal.open("reconnect=bad-control-01");
    term.ws.send("not json");
    await term.until(() => term.controls.some((c) => c.type === "error"));
    term.type("echo still-alive\n");
    await term.until(() => term.output.includes("still-alive"));
    await term.close();
  });
});
