import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { waitFor } from "@polydev/core/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { WINDOW_BYTES } from "./flow-control.js";
import { isAlive } from "./process-tree.js";
import type { AgentFixture } from "./testing/agent-fixture.js";
import { startAgentFixture } from "./testing/agent-fixture.js";

const MiB = 1024 * 1024;

let fixture: AgentFixture;
beforeEach(async () => {
  fixture = await startAgentFixture();
});
afterEach(async () => {
  await fixture.cleanup();
});

/** Bytes the process has written so far, from the kernel's own count. */
async function bytesWritten(pid: number): Promise<number> {
  const io = await readFile(`/proc/${pid}/io`, "utf8");
  return Number(/^wchar: (\d+)$/m.exec(io)?.[1] ?? Number.NaN);
}

describe("flow control", () => {
  it("holds a fast producer back while the reader is paused, then streams all 50 MB", async () => {
    const total = 50 * MiB;
    const pidFile = join(fixture.home, "producer.pid");
    const process = await fixture.agent.exec({
      argv: ["/bin/sh", "-c", `echo $$ > ${pidFile}; exec head -c ${total} /dev/zero`],
    });
    process.stdin.end();
    process.stdout.pause();
    const pid = await waitFor("the producer's pid", async () => {
      const text = await readFile(pidFile, "utf8").catch(() => "");
      return text.endsWith("\n") ? Number(text) : undefined;
    });
    // Wait until the producer has stalled (two equal readings), however loaded the machine is.
    let early = -1;
    for (let latest = await bytesWritten(pid); latest !== early; latest = await bytesWritten(pid)) {
      early = latest;
      await sleep(200);
    }
    await sleep(300);
    // Stalled for good: nothing more written, the process still alive, and only about one window
    // (plus the kernel pipe and Node's socket buffer) ever left it.
    expect(await bytesWritten(pid)).toBe(early);
    expect(early).toBeLessThan(WINDOW_BYTES + 2 * MiB);
    expect(await isAlive(pid)).toBe(true);
    expect(process.stdout.readableLength).toBeLessThanOrEqual(WINDOW_BYTES);

    // A slow reader: the receiving buffer never holds more than a window.
    let received = 0;
    let maxBuffered = 0;
    let chunks = 0;
    for await (const chunk of process.stdout) {
      received += (chunk as Buffer).length;
      maxBuffered = Math.max(maxBuffered, process.stdout.readableLength);
      if (++chunks % 100 === 0) await sleep(5);
    }
    expect(received).toBe(total);
    expect(maxBuffered).toBeLessThanOrEqual(WINDOW_BYTES);
    expect((await process.exited).exitCode).toBe(0);
  });
});
