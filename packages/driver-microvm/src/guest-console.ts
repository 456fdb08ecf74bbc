/**
 * The guest's serial console (its kernel's messages: an out-of-memory kill, a panic), kept as a
 * bounded tail in the server's memory for `logs()`. QEMU serves the console on a unix socket in
 * the VM's run directory (qemu-vmm.ts) and drops what the guest writes while nobody reads.
 *
 * Never written to the host's disk, and never more than TAIL_BYTES per sandbox: the guest decides
 * how much it prints. The socket is read as fast as it comes (no back-pressure): a paused reader
 * would make QEMU hold the guest's console writes, and with them the guest.
 */
import type { Socket } from "node:net";
import { connect } from "node:net";
import { join } from "node:path";

export const CONSOLE_TAIL_BYTES = 32 * 1024;

/** Where QEMU serves a sandbox VM's console (qemu-vmm.ts: a VM without a console log file). */
export function consoleSocket(runDir: string): string {
  return join(runDir, "console.sock");
}

/** The console's part of a sandbox's logs, or nothing when the guest printed nothing. */
export function consoleSection(tail: string): string {
  return tail.length === 0 ? "" : `guest console:\n${tail}`;
}

export class GuestConsole {
  private readonly tails = new Map<string, { socket: Socket; chunks: Buffer[]; bytes: number }>();

  /**
   * Starts keeping the tail of the console at `socketPath` for `sandboxId`: `newVm` for a VM just
   * started (a create, a resume: what its predecessor printed is kept), else a VM found running
   * after a server restart, whose console already read is left alone.
   */
  follow(sandboxId: string, socketPath: string, newVm = false): void {
    const known = this.tails.get(sandboxId);
    if (known !== undefined && !known.socket.destroyed && !newVm) return;
    known?.socket.destroy();
    const tail = { socket: connect(socketPath), chunks: [] as Buffer[], bytes: 0 };
    if (known !== undefined) {
      tail.chunks = known.chunks;
      tail.bytes = known.bytes;
    }
    this.tails.set(sandboxId, tail);
    tail.socket.on("data", (chunk: Buffer) => {
      tail.chunks.push(chunk);
      tail.bytes += chunk.length;
      while (tail.bytes - (tail.chunks[0]?.length ?? 0) >= CONSOLE_TAIL_BYTES) {
        tail.bytes -= tail.chunks.shift()?.length ?? 0;
      }
    });
    // No console (a VMM without one, a VM already gone): nothing to keep, nothing to report.
    tail.socket.on("error", () => undefined);
    tail.socket.unref();
  }

  /** The last CONSOLE_TAIL_BYTES the guest printed (as text, control bytes dropped). */
  tail(sandboxId: string): string {
    const tail = this.tails.get(sandboxId);
    if (tail === undefined) return "";
    const text = Buffer.concat(tail.chunks).subarray(-CONSOLE_TAIL_BYTES).toString("utf8");
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the guest's control bytes are what is dropped
    return text.replace(/\r/g, "").replace(/[\x00-\x08\x0b-\x1f\x7f]/g, "");
  }

  /** The sandbox is gone: its tail goes too. */
  forget(sandboxId: string): void {
    this.tails.get(sandboxId)?.socket.destroy();
    this.tails.delete(sandboxId);
  }
}
