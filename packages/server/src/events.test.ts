/**
 * GET /v1/events on a real server: a user's own sandbox states (failed with its reason), over
 * SSE and WebSocket, resumed after a reconnect without loss or repeats; never another user's;
 * admins see everyone's with all=1; streams are capped per user; and a client that stops
 * reading is disconnected rather than buffered.
 */
import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import type { ApiClient, TestServer } from "./testing/harness.js";
import { createUser, startTestServer } from "./testing/harness.js";
import { GOOD_CODE, STAND_IN_LOGIN_FLOWS } from "./testing/stand-in-logins.js";

interface StreamEvent {
  id: string;
  type: string;
  at: number;
  userId: string;
  data: Record<string, unknown>;
}

/** An SSE client that hands out events one at a time, with the SSE `id:` of each. */
async function openSse(client: ApiClient, query = "", lastEventId?: string) {
  const controller = new AbortController();
  const response = await fetch(`${client.url}/v1/events${query}`, {
    headers: {
      authorization: `Bearer ${client.key}`,
      accept: "text/event-stream",
      ...(lastEventId ? { "last-event-id": lastEventId } : {}),
    },
    signal: controller.signal,
  });
  const queue: (StreamEvent & { sseId: string | undefined })[] = [];
  let wake: (() => void) | undefined;
  let ended = false;
  const pump = async (): Promise<void> => {
    if (!response.body) return;
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      for await (const chunk of response.body) {
        buffer += decoder.decode(chunk, { stream: true });
        let boundary = buffer.indexOf("\n\n");
        while (boundary >= 0) {
          const block = buffer.slice(0, boundary);
          buffer = buffer.slice(boundary + 2);
          const id = /^id: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (data) queue.push({ ...(JSON.parse(data) as StreamEvent), sseId: id });
          wake?.();
          boundary = buffer.indexOf("\n\n");
        }
      }
    } catch {
      // Aborted by close().
    } finally {
      ended = true;
      wake?.();
    }
  };
  void pump();
  return {
    status: response.status,
    response,
    async next(timeoutMs = 10_000): Promise<StreamEvent & { sseId: string | undefined }> {
      const deadline = Date.now() + timeoutMs;
      while (queue.length === 0) {
        if (ended) throw new Error("the stream ended");
        const left = deadline - Date.now();
        if (left <= 0) throw new Error("no event in time");
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, left);
        });
      }
      return queue.shift() as StreamEvent & { sseId: string | undefined };
    },
    /** Events that arrived so far, without waiting. */
    drain(): StreamEvent[] {
      return queue.splice(0);
    },
    close(): void {
      controller.abort();
    },
  };
}

/** Reads events until one matches, failing after `timeoutMs`. */
async function nextMatching(
  stream: Awaited<ReturnType<typeof openSse>>,
  match: (event: StreamEvent) => boolean,
  timeoutMs = 15_000,
): Promise<StreamEvent & { sseId: string | undefined }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const event = await stream.next(Math.max(1, deadline - Date.now()));
    if (match(event)) return event;
  }
}

let t: TestServer;
let alice: ApiClient;
let bob: ApiClient;
let aliceId: string;

beforeAll(async () => {
  t = await startTestServer(
    { events: { maxStreamsPerUser: 3, maxBufferedBytes: 64 * 1024 } },
    { loginFlows: STAND_IN_LOGIN_FLOWS },
  );
  alice = await createUser(t.api, "alice");
  bob = await createUser(t.api, "bob");
  aliceId = (await alice.call<{ id: string }>("GET", "/v1/me")).body.id;
});
afterAll(async () => {
  await t?.close();
});

describe("GET /v1/events", () => {
  it("streams the user's own sandbox states, never another user's, and a failure with its reason", async () => {
    const aliceStream = await openSse(alice);
    const bobStream = await openSse(bob);
    expect(aliceStream.status).toBe(200);
    expect(aliceStream.response.headers.get("content-type")).toContain("text/event-stream");
    try {
      const sandbox = await alice.createSandbox({ network: "none" });
      const creating = await aliceStream.next();
      expect(creating).toMatchObject({
        type: "sandbox.state",
        userId: aliceId,
        data: { sandboxId: sandbox, state: "creating", previous: null },
      });
      expect(creating.sseId).toBe(creating.id);
      const running = await aliceStream.next();
      expect(running.data).toMatchObject({ sandboxId: sandbox, state: "running", previous: "creating" });

      // A failure reported from anywhere (here the store, as the reconciler writes it) carries its reason.
      await t.server.store.sandboxes.transition(sandbox, ["running"], "failed", {
        at: Date.now(),
        failureReason: "the sandbox's processes are gone",
      });
      const failed = await aliceStream.next();
      expect(failed.data).toMatchObject({
        sandboxId: sandbox,
        state: "failed",
        reason: "the sandbox's processes are gone",
      });

      // Bob's first event is his own sandbox's: none of Alice's reached him.
      const bobSandbox = await bob.createSandbox({ network: "none" });
      const bobFirst = await bobStream.next();
      expect(bobFirst.data.sandboxId).toBe(bobSandbox);
      expect(bobFirst.userId).not.toBe(aliceId);
      await nextMatching(bobStream, (e) => e.data.state === "running");
      expect(bobStream.drain().filter((e) => e.userId === aliceId)).toEqual([]);
    } finally {
      aliceStream.close();
      bobStream.close();
    }
  });

  it("resumes after a reconnect from Last-Event-ID (or ?after=) with nothing missed or repeated", async () => {
    const first = await openSse(alice);
    const sandbox = await alice.createSandbox({ network: "none" });
    const seen = await nextMatching(first, (e) => e.data.sandboxId === sandbox && e.data.state === "running");
    first.close();

    // While no stream is open: a hibernate and a destroy happen.
    expect((await alice.call("POST", `/v1/sandboxes/${sandbox}/hibernate`)).status).toBe(200);
    expect((await alice.call("DELETE", `/v1/sandboxes/${sandbox}`)).status).toBe(200);

    const resumed = await openSse(alice, "", seen.id);
    const missed: StreamEvent[] = [];
    for (;;) {
      const event = await resumed.next();
      missed.push(event);
      if (event.data.state === "destroyed") break;
    }
    resumed.close();
    expect(missed.map((e) => e.id)).not.toContain(seen.id);
    expect(new Set(missed.map((e) => e.id)).size).toBe(missed.length);
    expect(missed.map((e) => e.data.state)).toEqual(["hibernated", "destroying", "destroyed"]);

    const byQuery = await openSse(alice, `?after=${encodeURIComponent(seen.id)}`);
    expect((await byQuery.next()).id).toBe(missed[0]?.id);
    byQuery.close();
  });

  it("reports a finished login, and a finished run with its state", async () => {
    const stream = await openSse(alice);
    try {
      const sandbox = await alice.createSandbox({ network: "none" });
      const login = await alice.call<{ id: string }>("POST", "/v1/logins", {
        provider: "claude",
        sandboxId: sandbox,
      });
      expect(login.status).toBe(201);
      await alice.call("POST", `/v1/logins/${login.body.id}/code`, { code: GOOD_CODE });
      const finished = await nextMatching(stream, (e) => e.type === "login.finished");
      expect(finished.data).toMatchObject({
        loginId: login.body.id,
        provider: "claude",
        state: "completed",
        reason: null,
      });

      // No provider answers here: the builtin run fails, and says so in its event.
      const run = await alice.call<{ id: string }>("POST", "/v1/runs", {
        agent: "builtin",
        prompt: "hi",
        sandboxId: sandbox,
      });
      expect(run.status).toBe(201);
      const ended = await nextMatching(stream, (e) => e.type === "run.finished", 60_000);
      expect(ended.data).toMatchObject({
        runId: run.body.id,
        sandboxId: sandbox,
        agent: "builtin",
        state: "failed",
      });
      expect(String(ended.data.exitReason)).not.toBe("");
    } finally {
      stream.close();
    }
  });

  it("is a WebSocket on the same route, resumable with ?after=", async () => {
    const url = `${t.url.replace("http", "ws")}/v1/events`;
    const socket = new WebSocket(url, { headers: { authorization: `Bearer ${alice.key}` } });
    const received: StreamEvent[] = [];
    socket.on("message", (data) => received.push(JSON.parse(String(data)) as StreamEvent));
    await new Promise((resolve, reject) => {
      socket.once("open", resolve);
      socket.once("error", reject);
    });
    const sandbox = await alice.createSandbox({ network: "none" });
    await expect
      .poll(() => received.filter((e) => e.data.sandboxId === sandbox).map((e) => e.data.state))
      .toEqual(["creating", "running"]);
    socket.close();
    const creating = received.find((e) => e.data.sandboxId === sandbox) as StreamEvent;

    const again = new WebSocket(`${url}?after=${encodeURIComponent(creating.id)}`, {
      headers: { authorization: `Bearer ${alice.key}` },
    });
    const first = await new Promise<StreamEvent>((resolve, reject) => {
      again.once("message", (data) => resolve(JSON.parse(String(data)) as StreamEvent));
      again.once("error", reject);
    });
    again.close();
    expect(first.data).toMatchObject({ sandboxId: sandbox, state: "running" });
  });

  it("gives admins every user's events with all=1, and refuses that to users", async () => {
    expect((await alice.call("GET", "/v1/events?all=1")).status).toBe(403);
    expect((await alice.call("GET", "/v1/events?after=not-an-id")).status).toBe(400);
    const admin = await openSse(t.api, "?all=1");
    try {
      const aliceBox = await alice.createSandbox({ network: "none" });
      const bobBox = await bob.createSandbox({ network: "none" });
      await nextMatching(admin, (e) => e.data.sandboxId === aliceBox);
      await nextMatching(admin, (e) => e.data.sandboxId === bobBox);
    } finally {
      admin.close();
    }
  });

  it("caps the streams one user holds at once", async () => {
    const open = [await openSse(bob), await openSse(bob), await openSse(bob)];
    for (const stream of open) expect(stream.status).toBe(200);
    const refused = await bob.call<{ error: { code: string } }>("GET", "/v1/events", undefined, {
      accept: "text/event-stream",
    });
    expect(refused.status).toBe(429);
    expect(refused.body.error.code).toBe("too_many_streams");
    // Alice is not affected by Bob's streams.
    const aliceStream = await openSse(alice);
    expect(aliceStream.status).toBe(200);
    aliceStream.close();
    open[0]?.close();
    await expect
      .poll(async () => {
        const response = await fetch(`${t.url}/v1/events`, {
          headers: { authorization: `Bearer ${bob.key}` },
        });
        await response.body?.cancel();
        return response.status;
      })
      .toBe(200);
    for (const stream of open) stream.close();
  });

  it("disconnects a client that stops reading instead of buffering for it", async () => {
    // A raw client that sends its request and never reads a byte of the answer.
    const { port } = new URL(t.url);
    const socket = connect(Number(port), "127.0.0.1");
    socket.pause();
    await new Promise((resolve) => socket.once("connect", resolve));
    socket.write(`GET /v1/events HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${alice.key}\r\n\r\n`);
    const dropped = async (): Promise<number> => {
      const text = (await t.api.call<string>("GET", "/metrics")).body;
      return Number(/^polydev_event_streams_dropped_total (\d+)/m.exec(text)?.[1] ?? 0);
    };
    expect(await dropped()).toBe(0);
    // Events as another replica would publish them: straight onto the bus, 48 KiB each.
    const topic = `events.user.${aliceId}`;
    const filler = "x".repeat(48 * 1024);
    await new Promise((resolve) => setTimeout(resolve, 200));
    for (let i = 0; i < 600 && (await dropped()) === 0; i++) {
      await t.server.bus.publish(
        topic,
        JSON.stringify({ type: "quota.reached", at: Date.now(), userId: aliceId, data: { filler } }),
      );
    }
    await expect.poll(dropped, { timeout: 10_000 }).toBe(1);
    socket.destroy();

    // The same over a WebSocket: a raw upgrade whose client never reads a frame.
    const ws = connect(Number(port), "127.0.0.1");
    ws.pause();
    await new Promise((resolve) => ws.once("connect", resolve));
    ws.write(
      `GET /v1/events HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${alice.key}\r\nconnection: Upgrade\r\n` +
        "upgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    );
    await new Promise((resolve) => setTimeout(resolve, 200));
    for (let i = 0; i < 600 && (await dropped()) === 1; i++) {
      await t.server.bus.publish(
        topic,
        JSON.stringify({ type: "quota.reached", at: Date.now(), userId: aliceId, data: { filler } }),
      );
    }
    await expect.poll(dropped, { timeout: 10_000 }).toBe(2);
    ws.destroy();
  });
});
