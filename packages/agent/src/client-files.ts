/** The calling side of files.*: paths relative to the sandbox home. */
import type { Readable } from "node:stream";
import type { AgentFiles, FileEntry, FileWatchEvent, PolydevError } from "@polydev/core";
import { StreamId } from "./channel.js";
import { firstAnswer } from "./client-answers.js";
import type { ClientConnection } from "./client-connection.js";
import { openOutput } from "./client-connection.js";
import { fromWireError } from "./wire-error.js";

export class ClientFiles implements AgentFiles {
  constructor(private readonly connection: ClientConnection) {}

  async stat(path: string, signal?: AbortSignal): Promise<FileEntry> {
    return (await this.call({ type: "files.stat", path }, signal)) as FileEntry;
  }

  async list(path: string, signal?: AbortSignal): Promise<FileEntry[]> {
    return (await this.call({ type: "files.list", path }, signal)) as FileEntry[];
  }

  read(path: string, signal?: AbortSignal): Promise<Readable> {
    return openOutput(this.connection, { type: "files.read", path }, signal);
  }

  /** Resolves once the whole upload is in place; a failed or aborted one leaves no partial file. */
  async write(
    path: string,
    data: Readable,
    options: { mode?: number; signal?: AbortSignal } = {},
  ): Promise<{ sizeBytes: number }> {
    const channel = this.connection.open({ type: "files.write", path, mode: options.mode }, options.signal);
    const sink = channel.writable(StreamId.stdin);
    let onSourceError: ((error: Error) => void) | undefined;
    const sourceFailed = new Promise<never>((_, reject) => {
      onSourceError = (error: Error): void => {
        reject(error);
        // Closing without an end aborts the upload on the agent's side.
        channel.close();
      };
      data.once("error", onSourceError);
    });
    sourceFailed.catch(() => undefined);
    data.pipe(sink);
    try {
      const answer = await Promise.race([
        firstAnswer(channel, this.connection.closedError, options.signal),
        sourceFailed,
      ]);
      return answer.value as { sizeBytes: number };
    } finally {
      data.unpipe(sink);
      if (onSourceError !== undefined) data.off("error", onSourceError);
      channel.close();
    }
  }

  async mkdir(path: string, options: { parents?: boolean; signal?: AbortSignal } = {}): Promise<void> {
    await this.call({ type: "files.mkdir", path, parents: options.parents ?? true }, options.signal);
  }

  async remove(path: string, options: { recursive?: boolean; signal?: AbortSignal } = {}): Promise<void> {
    await this.call({ type: "files.remove", path, recursive: options.recursive ?? false }, options.signal);
  }

  async rename(from: string, to: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    await this.call({ type: "files.rename", from, to }, options.signal);
  }

  /** Polls inside the sandbox (every 500 ms); see PROTOCOL.md for why it is not inotify. */
  async *watch(path: string, signal: AbortSignal): AsyncGenerator<FileWatchEvent> {
    if (signal.aborted) return;
    const channel = this.connection.open({ type: "files.watch", path });
    const queue: FileWatchEvent[] = [];
    let failure: PolydevError | undefined;
    let ended = false;
    let wake: (() => void) | undefined;
    channel.on("control", (message) => {
      if (message.type === "event" && typeof message.path === "string") {
        queue.push({ kind: message.kind === "change" ? "change" : "rename", path: message.path });
      } else if (message.type === "error") failure = fromWireError(message);
      wake?.();
    });
    channel.once("close", () => {
      ended = true;
      wake?.();
    });
    const stop = (): void => channel.close();
    signal.addEventListener("abort", stop, { once: true });
    try {
      while (!signal.aborted) {
        const next = queue.shift();
        if (next !== undefined) {
          yield next;
          continue;
        }
        if (failure !== undefined) throw failure;
        if (ended) throw this.connection.closedError();
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = undefined;
      }
    } finally {
      signal.removeEventListener("abort", stop);
      channel.close();
    }
  }

  private async call(
    request: { type: string; [field: string]: unknown },
    signal?: AbortSignal,
  ): Promise<unknown> {
    const channel = this.connection.open(request, signal);
    return (await firstAnswer(channel, this.connection.closedError, signal)).value;
  }
}
