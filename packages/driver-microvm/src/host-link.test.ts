/**
 * The host's end of the link against a guest that misbehaves (a real unix socket, a fake guest
 * speaking the link's framing): what a guest sends before the host's marker is dropped, and a
 * guest that never sends it is cut off after a bounded number of bytes, never buffered whole.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Mux } from "@polydev/agent";
import { afterEach, describe, expect, it } from "vitest";
import { AgentLink } from "./host-link.js";
import { resetMarker } from "./link-protocol.js";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

async function fakeGuest(onSocket: (socket: Socket) => void): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "polydev-link-test-"));
  const path = join(dir, "agent.sock");
  const server: Server = createServer(onSocket);
  await new Promise<void>((resolve) => server.listen(path, resolve));
  cleanups.push(async () => {
    server.close();
    await rm(dir, { recursive: true, force: true });
  });
  return path;
}

/** Reads the host's reset frame out of the first bytes: `{type:"reset", nonce}` on channel 0. */
function nonceOf(bytes: Buffer): string | undefined {
  return /"nonce":"([0-9a-f]+)"/.exec(bytes.toString("latin1"))?.[1];
}

describe("AgentLink", () => {
  it("drops an older session's bytes and starts at its own marker", async () => {
    const path = await fakeGuest((socket) => {
      socket.on("error", () => undefined);
      socket.write(Buffer.from("\u0000\u0000\u0000\u0009stale frames of another host"));
      socket.once("data", (first: Buffer) => {
        const nonce = nonceOf(first);
        if (nonce === undefined) return;
        socket.write(resetMarker(nonce));
        const mux = new Mux(socket, {}, "server");
        mux.hello({ type: "hello", version: 1, activated: true });
      });
    });
    const link = await AgentLink.attach(path, { timeoutMs: 5_000 });
    expect(link.hello.activated).toBe(true);
    expect(link.alive).toBe(true);
    link.close();
  });

  it("cuts off a guest that floods without ever sending the marker", async () => {
    let sent = 0;
    const path = await fakeGuest((socket) => {
      socket.on("error", () => undefined);
      const chunk = Buffer.alloc(64 * 1024, 0x41);
      const pump = (): void => {
        while (!socket.destroyed && sent < 64 * 1024 * 1024) {
          sent += chunk.length;
          if (!socket.write(chunk)) {
            socket.once("drain", pump);
            return;
          }
        }
      };
      pump();
    });
    await expect(AgentLink.attach(path, { timeoutMs: 20_000 })).rejects.toMatchObject({
      code: "sandbox_not_running",
    });
    // The host stopped reading at its bound (16 MiB) plus what was in flight.
    expect(sent).toBeLessThan(64 * 1024 * 1024);
  });
});
