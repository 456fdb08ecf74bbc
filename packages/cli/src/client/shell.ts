/**
 * `polydev sandbox shell`: this terminal attached to a shell in a sandbox. Raw mode so every key
 * (Ctrl-C included) goes to the remote shell, the remote size follows this window, and whatever
 * happens the terminal is put back as it was.
 */
import { randomBytes } from "node:crypto";
import type { Polydev, PtySession } from "@polydev/sdk";
import { EXIT_FAILED, EXIT_OK, remoteExitCode, withSpinner } from "./io.js";

/** Ctrl-], as in telnet: a key no shell needs. */
const DETACH_BYTE = 0x1d;
const RECONNECT_ATTEMPTS = 5;

export async function attachShell(polydev: Polydev, sandboxId: string, reconnect?: string): Promise<number> {
  const { stdin, stdout, stderr } = process;
  const size = (): { cols: number; rows: number } => ({
    cols: stdout.columns || 80,
    rows: stdout.rows || 24,
  });
  const reconnectId = reconnect ?? `cli-${randomBytes(12).toString("base64url")}`;
  const first = await withSpinner(`Connecting to ${sandboxId}`, () =>
    polydev.sandboxes.pty(sandboxId, { ...size(), reconnectId }),
  );
  const raw = stdin.isTTY === true;
  if (raw) stdin.setRawMode(true);
  stdin.resume();
  // Raw first: keys typed after the hint must not be echoed by the local terminal.
  stderr.write(
    `${first.reattached ? "Reattached to" : "Connected to"} ${sandboxId}; 'exit' ends the shell, Ctrl-] detaches.\r\n`,
  );

  return new Promise<number>((resolve) => {
    let session: PtySession = first;
    let done = false;
    const finish = (code: number, message?: string): void => {
      if (done) return;
      done = true;
      stdin.off("data", onInput);
      stdout.off("resize", onResize);
      process.off("SIGTERM", onTerminate);
      process.off("SIGHUP", onHangUp);
      if (raw) stdin.setRawMode(false);
      stdin.pause();
      if (message) stderr.write(message);
      resolve(code);
    };
    const onInput = (chunk: Buffer): void => {
      const detachAt = chunk.indexOf(DETACH_BYTE);
      if (detachAt < 0) {
        session.write(chunk);
        return;
      }
      if (detachAt > 0) session.write(chunk.subarray(0, detachAt));
      session.close();
      finish(
        EXIT_OK,
        `\r\nDetached; the shell keeps running for a while. Reattach: polydev sandbox shell --reconnect ${reconnectId} ${sandboxId}\r\n`,
      );
    };
    const onResize = (): void => {
      const { cols, rows } = size();
      session.resize(cols, rows);
    };
    const onTerminate = (): void => {
      session.close();
      finish(143);
    };
    const onHangUp = (): void => {
      session.close();
      finish(129);
    };
    const follow = (next: PtySession): void => {
      session = next;
      next.onData((bytes) => stdout.write(bytes));
      next.onExit((exit) => finish(remoteExitCode(exit)));
      next.onDisconnect(() => void reattach());
    };
    // The shell lives on in the server; a dropped connection comes back to it with the same id.
    const reattach = async (): Promise<void> => {
      for (let attempt = 1; attempt <= RECONNECT_ATTEMPTS && !done; attempt++) {
        await new Promise((wait) => setTimeout(wait, 200 * 2 ** attempt));
        try {
          follow(await polydev.sandboxes.pty(sandboxId, { ...size(), reconnectId, replay: false }));
          return;
        } catch (error) {
          if (attempt === RECONNECT_ATTEMPTS)
            finish(
              EXIT_FAILED,
              `\r\npolydev: the connection dropped and did not come back: ${error instanceof Error ? error.message : String(error)}\r\n`,
            );
        }
      }
    };
    follow(first);
    stdin.on("data", onInput);
    stdout.on("resize", onResize);
    process.on("SIGTERM", onTerminate);
    process.on("SIGHUP", onHangUp);
  });
}
