import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import type { ApiClient, TestServer } from "../../server/src/testing/harness.js";
import { createUser, startTestServer } from "../../server/src/testing/harness.js";
import { Polydev } from "./client.js";
import { NotFoundError, SandboxNotRunningError, UnauthorizedError } from "./errors.js";
import type { PtySession } from "./pty.js";

let t: TestServer;
let polydev: Polydev;
let boxId: string;
let user: ApiClient;

beforeAll(async () => {
  t = await startTestServer();
  user = await createUser(t.api, "pty-sdk-user");
  polydev = new Polydev({ baseUrl: t.url, apiKey: user.key, WebSocket });
  boxId = (await polydev.sandboxes.create({ memoryMb: 256 })).id;
});
afterAll(async () => {
  await t?.close();
});

/** Everything the terminal printed so far, decoded. */
function screen(term: PtySession): { text: () => string; until: (pattern: RegExp) => Promise<string> } {
  let text = "";
  const decoder = new TextDecoder();
  term.onData((bytes) => {
    text += decoder.decode(bytes, { stream: true });
  });
  return {
    text: () => text,
    until: async (pattern) => {
      for (let waited = 0; waited < 15_000; waited += 20) {
        const match = pattern.exec(text);
        if (match) return match[0];
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      throw new Error(`no ${pattern} on the screen: ${JSON.stringify(text.slice(-400))}`);
    },
  };
}

describe("polydev.sandboxes.pty", () => {
  it("types into a shell and resizes it", async () => {
    const term = await polydev.sandboxes.pty(boxId, { cols: 100, rows: 30 });
    expect(term.reattached).toBe(false);
    const out = screen(term);
    term.write("stty size\r");
    await out.until(/30 100/);
    term.resize(120, 40);
    term.write(new TextEncoder().encode("stty size; echo $((6 * 7))\r"));
    await out.until(/40 120/);
    await out.until(/42/);
    term.close();
  });

  it("reattaches to the same shell with the same reconnect id", async () => {
    const reconnectId = "sdk-reattach-0001";
    const first = await polydev.sandboxes.pty(boxId, { reconnectId });
    expect(first).toMatchObject({ reconnectId, reattached: false });
    const firstOut = screen(first);
    first.write("export MARK=kept-$$; echo set-$MARK\r");
    const pid = (await firstOut.until(/set-kept-\d+/)).slice("set-kept-".length);
    first.close();

    const second = await polydev.sandboxes.pty(boxId, { reconnectId });
    expect(second.reattached).toBe(true);
    const secondOut = screen(second);
    // The replayed screen arrives before `ready`; the session hands it to the first listener.
    await secondOut.until(new RegExp(`set-kept-${pid}`));
    second.write("echo again-$MARK\r");
    await secondOut.until(new RegExp(`again-kept-${pid}`));
    second.close();

    const other = await polydev.sandboxes.pty(boxId, { reconnectId: "sdk-reattach-0002" });
    const otherOut = screen(other);
    other.write("echo fresh-[$MARK]\r");
    await otherOut.until(/fresh-\[\]/);
    other.close();
  });

  it("tells a dropped connection from a close, and carries on in the same shell without a replay", async () => {
    const sockets: WebSocket[] = [];
    /** The `ws` class, keeping hold of each socket so the test can cut one off. */
    class TappedWebSocket extends WebSocket {
      constructor(...args: ConstructorParameters<typeof WebSocket>) {
        super(...args);
        sockets.push(this);
      }
    }
    const tapped = new Polydev({ baseUrl: t.url, apiKey: user.key, WebSocket: TappedWebSocket });
    const first = await tapped.sandboxes.pty(boxId, { reconnectId: "sdk-dropped-0001" });
    const firstOut = screen(first);
    first.write("export DROP=still-$$; echo before-$DROP\r");
    const mark = (await firstOut.until(/before-still-\d+/)).slice("before-".length);
    const dropped = new Promise<string>((resolve) => first.onDisconnect(resolve));
    sockets.at(-1)?.terminate();
    expect(await dropped).toMatch(/closed/);

    const second = await tapped.sandboxes.pty(boxId, { reconnectId: first.reconnectId, replay: false });
    expect(second.reattached).toBe(true);
    const secondOut = screen(second);
    second.write("echo after-$DROP\r");
    await secondOut.until(new RegExp(`after-${mark}`));
    expect(secondOut.text()).not.toContain(`before-${mark}`);
    second.close();
  });

  it("reports the shell's exit code", async () => {
    const term = await polydev.sandboxes.pty(boxId);
    const exited = new Promise((resolve) => term.onExit(resolve));
    let dropped = false;
    term.onDisconnect(() => {
      dropped = true;
    });
    term.write("exit 7\r");
    expect(await exited).toEqual({ exitCode: 7, signal: null });
    expect(dropped).toBe(false);
  });

  it("throws the SDK's error classes when the terminal cannot open", async () => {
    await expect(polydev.sandboxes.pty("sbx_missing")).rejects.toBeInstanceOf(NotFoundError);
    const gone = await polydev.sandboxes.create({ memoryMb: 128 });
    await polydev.sandboxes.destroy(gone.id);
    await expect(polydev.sandboxes.pty(gone.id)).rejects.toBeInstanceOf(SandboxNotRunningError);
    await expect(polydev.sandboxes.pty(boxId, { signal: AbortSignal.abort() })).rejects.toThrow();
  });

  it("throws UnauthorizedError for a wrong key", async () => {
    const stranger = new Polydev({ baseUrl: t.url, apiKey: "pdk_wrong", WebSocket });
    await expect(stranger.sandboxes.pty(boxId)).rejects.toBeInstanceOf(UnauthorizedError);
  });

  it("says what to pass when there is no WebSocket class", async () => {
    const bare = new Polydev({ baseUrl: t.url, apiKey: "pdk_any" });
    await expect(bare.sandboxes.pty(boxId)).rejects.toThrow(/pass `WebSocket`/);
  });
});
