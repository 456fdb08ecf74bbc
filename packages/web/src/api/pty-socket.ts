/**
 * The terminal's WebSocket (`/v1/sandboxes/:id/pty`): binary frames are terminal bytes both ways,
 * text frames are JSON control messages (`resize` in; `ready`, `exit`, `error` out). The browser
 * sends the session cookie and its Origin with the upgrade, which is how the server authenticates it.
 */
export interface PtyHandlers {
  onData(bytes: Uint8Array): void;
  onReady(info: { reconnectId: string; reattached: boolean }): void;
  onExit(info: { exitCode: number | null; signal: string | null }): void;
  onError(message: string): void;
  /** The socket closed; `expected` is true after close() or the shell's exit. */
  onClose(info: { code: number; reason: string; expected: boolean }): void;
}

export interface PtyConnection {
  write(data: string | Uint8Array): void;
  resize(cols: number, rows: number): void;
  close(): void;
}

type Control =
  | { type: "ready"; reconnectId: string; reattached: boolean }
  | { type: "exit"; exitCode: number | null; signal: string | null }
  | { type: "error"; message: string; code?: string }
  | { type: "pong" };

export function openPtySocket(
  sandboxId: string,
  options: { cols: number; rows: number; reconnectId: string },
  handlers: PtyHandlers,
): PtyConnection {
  const url = new URL(`/v1/sandboxes/${encodeURIComponent(sandboxId)}/pty`, window.location.origin);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.searchParams.set("cols", String(options.cols));
  url.searchParams.set("rows", String(options.rows));
  url.searchParams.set("reconnect", options.reconnectId);
  const socket = new WebSocket(url);
  socket.binaryType = "arraybuffer";
  const encoder = new TextEncoder();
  let expected = false;
  let pending: (string | Uint8Array)[] = [];

  const sendNow = (frame: string | Uint8Array): void => {
    if (socket.readyState === WebSocket.OPEN) socket.send(frame);
    else if (socket.readyState === WebSocket.CONNECTING) pending.push(frame);
  };

  socket.onopen = () => {
    for (const frame of pending) socket.send(frame);
    pending = [];
  };
  socket.onmessage = (message: MessageEvent<ArrayBuffer | string>) => {
    if (typeof message.data !== "string") {
      handlers.onData(new Uint8Array(message.data));
      return;
    }
    let control: Control;
    try {
      control = JSON.parse(message.data) as Control;
    } catch {
      return;
    }
    if (control.type === "ready") handlers.onReady(control);
    else if (control.type === "exit") {
      expected = true;
      handlers.onExit(control);
    } else if (control.type === "error") handlers.onError(control.message);
  };
  socket.onclose = (event) => handlers.onClose({ code: event.code, reason: event.reason, expected });

  return {
    write: (data) => sendNow(typeof data === "string" ? encoder.encode(data) : data),
    resize: (cols, rows) => sendNow(JSON.stringify({ type: "resize", cols, rows })),
    close: () => {
      expected = true;
      socket.close(1000, "closed by the dashboard");
    },
  };
}
