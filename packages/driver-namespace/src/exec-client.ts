/**
 * The host's side of the sandbox's exec server (native/exec-server.c): one unix socket
 * connection per process, no process spawned on the host. The wire format is described in the
 * C file. Whatever arrives is sandbox-controlled: frames are length-checked and a confused
 * server only ends its own process.
 */
import type { Socket } from "node:net";
import { connect } from "node:net";
import { constants } from "node:os";
import { Readable, Writable } from "node:stream";
import type { LaunchedExit, LaunchedProcess, LaunchRequest } from "@polydev/core";
import { PolydevError } from "@polydev/core";
import { signalNameOf } from "./signal-names.js";

const HEADER_BYTES = 5;
const CHUNK_BYTES = 64 * 1024;
/** Must match MAX_REQUEST_BYTES in exec-server.c. */
export const MAX_REQUEST_BYTES = 4 * 1024 * 1024;
/** After asking for a kill, how long the server gets to report the exit before we hang up. */
const KILL_GRACE_MS = 2_000;

function frame(type: string, payload?: Buffer): Buffer {
  const header = Buffer.allocUnsafe(HEADER_BYTES);
  header[0] = type.charCodeAt(0);
  header.writeUInt32BE(payload?.length ?? 0, 1);
  return payload === undefined ? header : Buffer.concat([header, payload]);
}

/**
 * argc, envc, then argv, KEY=value pairs and cwd, each NUL-terminated; on a terminal ('T') the
 * size comes first.
 */
export function encodeRequest(request: LaunchRequest): Buffer {
  const strings = [
    ...request.argv,
    ...Object.entries(request.env).map(([key, value]) => `${key}=${value}`),
    request.cwd,
  ];
  if (request.argv.length === 0) throw new PolydevError("invalid_request", "argv must not be empty");
  for (const text of strings) {
    if (text.includes("\0")) {
      throw new PolydevError("invalid_request", "argv, env and cwd must not contain NUL characters");
    }
  }
  const counts = Buffer.allocUnsafe(8);
  counts.writeUInt32BE(request.argv.length, 0);
  counts.writeUInt32BE(strings.length - request.argv.length - 1, 4);
  const parts: Buffer[] = [counts, Buffer.from(`${strings.join("\0")}\0`)];
  if (request.tty !== undefined) parts.unshift(terminalSize(request.tty.cols, request.tty.rows));
  const body = Buffer.concat(parts);
  if (body.length > MAX_REQUEST_BYTES) {
    throw new PolydevError(
      "invalid_request",
      `argv, env and cwd together are ${body.length} bytes; the limit is ${MAX_REQUEST_BYTES}`,
    );
  }
  const main = frame(request.tty === undefined ? "R" : "T", body);
  if (request.user === undefined) return main;
  // A 'U' frame first: the init's child switches to this user before exec (users.c).
  const user = Buffer.from(request.user);
  if (user.length === 0 || user.length > 255 || request.user.includes("\0") || request.user.includes(":")) {
    throw new PolydevError("invalid_request", "user must be a user name or uid of 1-255 characters");
  }
  return Buffer.concat([frame("U", user), main]);
}

function terminalSize(cols: number, rows: number): Buffer {
  const size = Buffer.allocUnsafe(4);
  size.writeUInt16BE(Math.min(0xffff, Math.max(1, Math.floor(cols))), 0);
  size.writeUInt16BE(Math.min(0xffff, Math.max(1, Math.floor(rows))), 2);
  return size;
}

/**
 * Starts `request` through an exec server: on a new connection to `socket` if it is a path.
 * With `release`, a connection whose process ended normally is told 'D' (done) and handed back
 * for the next process instead of being closed.
 */
export function startOverExecServer(
  socket: Socket | string,
  request: LaunchRequest,
  release?: (socket: Socket) => void,
): LaunchedProcess {
  const encoded = encodeRequest(request);
  return runOnConnection(typeof socket === "string" ? connect(socket) : socket, encoded, release);
}

function runOnConnection(
  socket: Socket,
  encoded: Buffer,
  release: ((socket: Socket) => void) | undefined,
): LaunchedProcess {
  socket.write(encoded);

  let exit: LaunchedExit | undefined;
  let killRequested = false;
  let killTimer: NodeJS.Timeout | undefined;
  let resolveExited: (exit: LaunchedExit) => void = () => undefined;
  const exited = new Promise<LaunchedExit>((resolve) => {
    resolveExited = resolve;
  });

  // Both outputs share the socket: it is paused while either reader is behind, i.e. from a push
  // that found its buffer full until that stream asks for more (`read`).
  const behind = { stdout: false, stderr: false };
  let resumeReading = (): void => undefined;
  const wantsMore = (name: "stdout" | "stderr") => (): void => {
    behind[name] = false;
    if (!behind.stdout && !behind.stderr) resumeReading();
  };
  const stdout = new Readable({ read: wantsMore("stdout") });
  const stderr = new Readable({ read: wantsMore("stderr") });

  const stdin = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      if (exit !== undefined || socket.destroyed) {
        callback();
        return;
      }
      let last = true;
      for (let offset = 0; offset < chunk.length; offset += CHUNK_BYTES) {
        last = socket.write(frame("I", chunk.subarray(offset, offset + CHUNK_BYTES)));
      }
      // Back-pressure: the next chunk waits until the socket has room again.
      if (last) callback();
      else socket.once("drain", () => callback());
    },
    final(callback) {
      if (exit === undefined && !socket.destroyed) socket.write(frame("i"));
      callback();
    },
  });

  // A failure is not written to stderr here: the exec operation says it there, for every launcher.
  const finish = (result: LaunchedExit, reusable = false): void => {
    if (exit !== undefined) return;
    exit = result;
    if (killTimer !== undefined) clearTimeout(killTimer);
    stdout.push(null);
    stderr.push(null);
    stdin.destroy();
    if (reusable && release !== undefined && !killRequested && !socket.destroyed) {
      // Anything still queued for this process (stdin) precedes the 'D', and the relay drops it.
      socket.write(frame("D"));
      for (const event of ["data", "error", "close", "drain", "end"]) socket.removeAllListeners(event);
      release(socket);
    } else {
      socket.destroy();
    }
    resolveExited(result);
  };

  let pending: Buffer = Buffer.alloc(0);
  /**
   * Handles the complete frames in `pending`. It stops at the first output a reader has no room
   * for, leaving the rest in `pending` (paused socket, at most one read's worth), and goes on
   * when that reader asks for more: so nothing is held beyond one frame past the readers'
   * buffers. With `all`, every frame is handled regardless (the connection has closed).
   */
  const drain = (all = false): void => {
    let offset = 0;
    while (exit === undefined && pending.length - offset >= HEADER_BYTES) {
      if (!all && (behind.stdout || behind.stderr)) break;
      const type = String.fromCharCode(pending[offset] ?? 0);
      const length = pending.readUInt32BE(offset + 1);
      if (length > CHUNK_BYTES) {
        finish({ exitCode: null, signal: null, failure: "the sandbox's exec server sent a malformed frame" });
        return;
      }
      if (pending.length - offset < HEADER_BYTES + length) break;
      const payload = pending.subarray(offset + HEADER_BYTES, offset + HEADER_BYTES + length);
      offset += HEADER_BYTES + length;
      if (type === "O" || type === "E") {
        const name = type === "O" ? "stdout" : "stderr";
        if (!(type === "O" ? stdout : stderr).push(payload)) {
          behind[name] = true;
          socket.pause();
        }
      } else if (type === "X" && length === 8) {
        const code = payload.readInt32BE(0);
        const signo = payload.readInt32BE(4);
        finish(
          { exitCode: code >= 0 ? code : null, signal: signo > 0 ? (signalNameOf(signo) ?? null) : null },
          // Reused only if the server said nothing past the exit frame, as it must.
          pending.length === offset,
        );
      } else if (type === "F") {
        finish({ exitCode: 126, signal: null, failure: payload.toString("utf8") });
      } else {
        finish({ exitCode: null, signal: null, failure: "the sandbox's exec server sent a malformed frame" });
      }
    }
    pending = pending.subarray(offset);
  };
  resumeReading = (): void => {
    drain();
    if (!behind.stdout && !behind.stderr && !socket.destroyed) socket.resume();
  };
  socket.on("data", (chunk: Buffer) => {
    heardAnything = true;
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    drain();
  });
  socket.on("error", () => undefined);
  let heardAnything = false;
  socket.on("close", () => {
    // What arrived before the close is still the process's: its last output and its exit.
    drain(true);
    let failure = "lost the connection to the sandbox's exec server";
    // Before any answer this is almost always the init refusing the connection because it
    // could not fork (its refusal can be lost to the reset our request write then gets).
    if (!heardAnything) {
      failure =
        "the sandbox's exec server hung up before starting the command: is the sandbox at its process limit?";
    }
    finish(killRequested ? { exitCode: null, signal: "SIGKILL" } : { exitCode: 126, signal: null, failure });
  });

  const kill = (): void => {
    if (exit !== undefined || killRequested) return;
    killRequested = true;
    socket.write(frame("K"));
    // Hanging up is a kill too: if the server cannot answer (stdin back-pressure, or it is
    // stuck), the exit is reported without it.
    killTimer = setTimeout(() => socket.destroy(), KILL_GRACE_MS);
  };

  return {
    stdin,
    stdout,
    stderr,
    exited,
    kill,
    resize(cols: number, rows: number): void {
      if (exit === undefined && !socket.destroyed) socket.write(frame("W", terminalSize(cols, rows)));
    },
    // Hanging up is the exec server's cue: a command is killed with its tree, a terminal gets
    // SIGHUP and is killed after a grace period (see exec-server.c).
    abandon(): void {
      if (exit !== undefined) return;
      killRequested = true;
      socket.destroy();
    },
    signal(signal: NodeJS.Signals): void {
      if (signal === "SIGKILL") {
        kill();
        return;
      }
      const number = constants.signals[signal];
      if (exit === undefined && number !== undefined) socket.write(frame("S", Buffer.from([number])));
    },
  };
}
