/**
 * The gateway tunnel under abuse from inside a sandbox: it is a forward channel of the agent
 * protocol now, so a sandbox can neither stall the server nor make it buffer or allocate more
 * than a bounded amount, however it talks to its gateway port.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TestServer } from "./testing/harness.js";
import { startTestServer } from "./testing/harness.js";

/** Round trip of /healthz while the sandbox misbehaves: the server must keep answering (the old tunnel stalled it 8-22 s; 5 s is the bound every request gets in the fuzz test too). */
async function healthLatencyMs(url: string): Promise<number> {
  const started = performance.now();
  const response = await fetch(`${url}/healthz`);
  await response.text();
  expect(response.status).toBe(200);
  return performance.now() - started;
}

describe("the gateway tunnel under abuse", () => {
  let t: TestServer;
  let id: string;
  let port: number;

  beforeAll(async () => {
    t = await startTestServer();
    id = await t.api.createSandbox({ memoryMb: 512, pidsMax: 512 });
    const opened = await t.api.call<{ port: number }>("POST", `/v1/sandboxes/${id}/gateway`);
    expect(opened.status).toBe(200);
    port = opened.body.port;
  });
  afterAll(async () => {
    await t?.close();
  });

  it("keeps answering while a request announces gigabytes and trickles them", async () => {
    const trickle = await t.api.call<{ id: string }>("POST", `/v1/sandboxes/${id}/processes`, {
      cmd: [
        "python3",
        "-c",
        [
          "import socket, time",
          `s = socket.create_connection(('127.0.0.1', ${port}))`,
          "s.sendall(b'POST /anthropic/v1/messages HTTP/1.1\\r\\nhost: x\\r\\nx-api-key: pdg_nope\\r\\n" +
            "content-length: 2181038080\\r\\n\\r\\n')",
          "chunk = b'a' * 65536",
          "for _ in range(512):",
          "    try: s.sendall(chunk)",
          "    except OSError: break",
          "print('sent', flush=True)",
          "time.sleep(30)",
        ].join("\n"),
      ],
    });
    expect(trickle.status).toBe(201);
    for (let round = 0; round < 10; round++) {
      expect(await healthLatencyMs(t.url)).toBeLessThan(5000);
      await sleep(100);
    }
  });

  it("caps the connections a sandbox holds open and stays flat in memory under a connection flood", async () => {
    const before = process.memoryUsage().rss;
    const flood = await t.api.exec(
      id,
      [
        "python3",
        "-c",
        [
          "import socket",
          "held = []",
          "for i in range(200):",
          "    try:",
          `        held.append(socket.create_connection(('127.0.0.1', ${port}), timeout=5))`,
          "    except OSError: pass",
          "opened = 0",
          "for i in range(3000):",
          "    try:",
          `        c = socket.create_connection(('127.0.0.1', ${port}), timeout=5)`,
          "        c.close(); opened += 1",
          "    except OSError: pass",
          "alive = 0",
          "for s in held:",
          "    s.settimeout(2)",
          "    try:",
          "        s.sendall(b'GET /nope HTTP/1.1\\r\\nhost: x\\r\\n\\r\\n')",
          "        if s.recv(1): alive += 1",
          "    except OSError: pass",
          "print(alive, opened)",
        ].join("\n"),
      ],
      { timeoutMs: 120_000 },
    );
    expect(flood.status).toBe(200);
    const [alive, opened] = flood.body.stdout.trim().split(" ").map(Number);
    // At most the tunnel's cap of connections was ever carried at once; the rest were closed.
    expect(alive).toBeGreaterThan(0);
    expect(alive).toBeLessThanOrEqual(32);
    expect(opened).toBeGreaterThan(0);
    expect(await healthLatencyMs(t.url)).toBeLessThan(5000);
    const grownMiB = (process.memoryUsage().rss - before) / 1024 / 1024;
    expect(grownMiB).toBeLessThan(96);
    // And the gateway still works for this sandbox afterwards.
    const after = await t.api.exec(
      id,
      `python3 -c "import urllib.request,urllib.error\ntry:\n urllib.request.urlopen('http://127.0.0.1:${port}/anthropic/v1/messages', data=b'{}')\nexcept urllib.error.HTTPError as e: print(e.code)"`,
    );
    expect(after.body.stdout.trim()).toMatch(/^4\d\d$/);
  }, 180_000);
});
