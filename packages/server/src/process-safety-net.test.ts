/**
 * The last line of defence (server.ts installProcessSafetyNet): a rejection nobody handled is
 * logged and the server keeps serving; an uncaught exception is logged and the process exits 70.
 * Both are bugs, and every suite that runs a child server fails on the `processFault` line.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { ChildServer } from "./testing/child-server.js";
import { removeDataDir, startChildServer, until, within } from "./testing/child-server.js";

let server: ChildServer | undefined;
afterEach(async () => {
  await server?.stop();
  if (server) await removeDataDir(server.dataDir);
  server = undefined;
});

describe("process safety net", () => {
  it("logs an unhandled rejection and keeps serving", async () => {
    server = await startChildServer();
    await server.command("escape rejection", /escaped rejection/);
    const child = server;
    await until(async () => (await child.unhandledFaults()).length > 0, 10_000, "the processFault line");
    expect(await server.unhandledFaults()).toEqual([
      expect.stringContaining("unhandled promise rejection (a bug): test-only escaped rejection"),
    ]);
    expect(server.alive()).toBe(true);
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
  });

  it("logs an uncaught exception, then exits 70", async () => {
    server = await startChildServer();
    const exited = new Promise<number | null>((resolve) =>
      server?.process.once("exit", (code) => resolve(code)),
    );
    await server.command("escape exception", /escaped exception/);
    expect(await within(exited, 10_000, "the server to exit")).toBe(70);
    expect(await server.unhandledFaults()).toEqual([
      expect.stringContaining("uncaught exception (a bug); exiting: test-only escaped exception"),
    ]);
  });
});
