/**
 * The guest console's tail: bounded whatever the guest prints, control bytes dropped, kept
 * across a VM replaced under the same sandbox (a resume), and a sandbox's logs name it. The
 * console is a real unix socket server standing in for QEMU's.
 */
import { chown, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import type { Server, Socket } from "node:net";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { CONSOLE_TAIL_BYTES, consoleSection, GuestConsole } from "./guest-console.js";
import { checkVmSocket } from "./vm-socket.js";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A console server whose one client is handed to the test. */
async function consoleServer(): Promise<{ path: string; client: Promise<Socket>; server: Server }> {
  const dir = await mkdtemp(join(tmpdir(), "polydev-console-test-"));
  const path = join(dir, "console.sock");
  let accept: (socket: Socket) => void = () => undefined;
  const client = new Promise<Socket>((resolve) => {
    accept = resolve;
  });
  const server = createServer((socket) => accept(socket));
  await new Promise<void>((resolve) => server.listen(path, resolve));
  cleanups.push(async () => {
    server.close();
    await rm(dir, { recursive: true, force: true });
  });
  return { path, client, server };
}

function written(socket: Socket, data: string | Buffer): Promise<void> {
  return new Promise((resolve) => socket.write(data, () => resolve()));
}

/** Waits until the tail ends with `suffix` (the socket delivers asynchronously). */
async function tailEndsWith(console: GuestConsole, id: string, suffix: string): Promise<string> {
  for (let attempt = 0; attempt < 200; attempt += 1) {
    const tail = console.tail(id);
    if (tail.endsWith(suffix)) return tail;
    await new Promise((resolve) => setImmediate(resolve));
  }
  return console.tail(id);
}

describe("guest console tail", () => {
  it("keeps only the last CONSOLE_TAIL_BYTES of a flood, without control bytes", async () => {
    const { path, client } = await consoleServer();
    const console = new GuestConsole();
    cleanups.push(async () => console.forget("s1"));
    console.follow("s1", path);
    const socket = await client;
    for (let i = 0; i < 64; i += 1) await written(socket, `${String(i).padStart(4, "0")}${"x".repeat(4092)}`);
    await written(socket, "\u001b[1mOut of memory: Killed process 42 (perl)\r\n");
    const tail = await tailEndsWith(console, "s1", "(perl)\n");
    expect(tail.endsWith("Out of memory: Killed process 42 (perl)\n")).toBe(true);
    expect(tail).not.toContain("\u001b");
    expect(Buffer.byteLength(tail)).toBeLessThanOrEqual(CONSOLE_TAIL_BYTES);
    expect(tail).not.toContain("0000x");
    expect(consoleSection(tail).startsWith("guest console:\n")).toBe(true);
    expect(consoleSection("")).toBe("");
  });

  it("carries the tail over to the sandbox's next VM, and forgets it with the sandbox", async () => {
    const first = await consoleServer();
    const console = new GuestConsole();
    console.follow("s2", first.path);
    const before = await first.client;
    await written(before, "booted once\n");
    await tailEndsWith(console, "s2", "once\n");
    before.destroy();
    first.server.close();
    const second = await consoleServer();
    // A resume starts a new VM under the same sandbox.
    console.follow("s2", second.path, true);
    await written(await second.client, "resumed\n");
    expect(await tailEndsWith(console, "s2", "resumed\n")).toBe("booted once\nresumed\n");
    console.forget("s2");
    expect(console.tail("s2")).toBe("");
  });

  it("reports nothing for a console that is not there", async () => {
    const console = new GuestConsole();
    console.follow("s3", join(tmpdir(), "polydev-no-such-console.sock"));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(console.tail("s3")).toBe("");
    console.forget("s3");
  });
});

describe.skipIf(process.getuid?.() !== 0)(
  "a VM's socket before the server connects (needs root: chown)",
  () => {
    it("is only a socket owned by the VM's uid, never a link to another or a file", async () => {
      const { path } = await consoleServer();
      const vmUid = 1_600_000_123;
      await expect(checkVmSocket(path, vmUid)).rejects.toMatchObject({ code: "sandbox_not_running" });
      await chown(path, vmUid, vmUid);
      expect(await checkVmSocket(path, vmUid)).toBe(path);
      const dir = await mkdtemp(join(tmpdir(), "polydev-vm-socket-test-"));
      cleanups.push(() => rm(dir, { recursive: true, force: true }));
      const link = join(dir, "agent.sock");
      await symlink(path, link);
      await expect(checkVmSocket(link, vmUid)).rejects.toMatchObject({ code: "sandbox_not_running" });
      const file = join(dir, "qmp.sock");
      await writeFile(file, "");
      await chown(file, vmUid, vmUid);
      await expect(checkVmSocket(file, vmUid)).rejects.toMatchObject({ code: "sandbox_not_running" });
    });
  },
);
