import "@xterm/xterm/css/xterm.css";
import { FitAddon } from "@xterm/addon-fit";
import { Terminal } from "@xterm/xterm";
import { useEffect, useRef, useState } from "react";
import type { PtyConnection } from "../queries/pty";
import { forgetReconnectId, openTerminal } from "../queries/pty";

type Status =
  | { kind: "connecting" }
  | { kind: "connected"; reattached: boolean }
  | { kind: "exited"; detail: string }
  | { kind: "disconnected"; detail: string };

const RETRY_MS = 1500;

/**
 * xterm.js over the sandbox's PTY. The reconnect id lives in sessionStorage, so a reload
 * reattaches to the same shell (and the server replays its recent output).
 */
export function TerminalView({ sandboxId, visible }: { sandboxId: string; visible: boolean }) {
  const host = useRef<HTMLDivElement>(null);
  const fitRef = useRef<FitAddon | null>(null);
  const connection = useRef<PtyConnection | null>(null);
  const [status, setStatus] = useState<Status>({ kind: "connecting" });
  const [generation, setGeneration] = useState(0);

  useEffect(() => {
    const element = host.current;
    if (!element) return;
    void generation;
    const terminal = new Terminal({
      cursorBlink: true,
      fontFamily: 'ui-monospace, "SFMono-Regular", "DejaVu Sans Mono", Menlo, Consolas, monospace',
      fontSize: 14,
      scrollback: 5000,
      theme: {
        background: "#14161c",
        foreground: "#e6e8ee",
        cursor: "#9aa7ff",
        selectionBackground: "#3a4270",
      },
    });
    const fit = new FitAddon();
    terminal.loadAddon(fit);
    terminal.open(element);
    fitRef.current = fit;
    safeFit(fit);
    let disposed = false;
    let retry: ReturnType<typeof setTimeout> | undefined;

    const connect = (): void => {
      setStatus({ kind: "connecting" });
      connection.current = openTerminal(
        sandboxId,
        { cols: terminal.cols, rows: terminal.rows },
        {
          onData: (bytes) => terminal.write(bytes),
          onReady: ({ reattached }) => {
            setStatus({ kind: "connected", reattached });
            terminal.focus();
          },
          onExit: ({ exitCode, signal }) => {
            forgetReconnectId(sandboxId);
            setStatus({
              kind: "exited",
              detail: signal ? `signal ${signal}` : `exit code ${exitCode ?? "?"}`,
            });
          },
          onError: (message) => terminal.writeln(`\r\n\x1b[31m[polydev] ${message}\x1b[0m`),
          onClose: ({ expected, reason, code }) => {
            if (disposed || expected) return;
            setStatus({ kind: "disconnected", detail: reason || `connection closed (${code})` });
            // A dropped connection (server restart, network blip) is retried once on its own;
            // the same reconnect id brings the same shell back.
            // The server replays the recent screen on reattach, so start from a clean one.
            retry = setTimeout(() => {
              if (disposed) return;
              terminal.reset();
              connect();
            }, RETRY_MS);
          },
        },
      );
    };
    connect();

    const input = terminal.onData((data) => connection.current?.write(data));
    const binary = terminal.onBinary((data) =>
      connection.current?.write(Uint8Array.from(data, (c) => c.charCodeAt(0) & 0xff)),
    );
    const resized = terminal.onResize(({ cols, rows }) => connection.current?.resize(cols, rows));
    const observer = new ResizeObserver(() => safeFit(fit));
    observer.observe(element);

    return () => {
      disposed = true;
      if (retry) clearTimeout(retry);
      observer.disconnect();
      input.dispose();
      binary.dispose();
      resized.dispose();
      connection.current?.close();
      connection.current = null;
      fitRef.current = null;
      terminal.dispose();
    };
  }, [sandboxId, generation]);

  // A hidden terminal has no size; fit it again when its tab comes back.
  useEffect(() => {
    if (visible && fitRef.current) safeFit(fitRef.current);
  }, [visible]);

  return (
    <div className="terminal-frame">
      <div className="terminal-bar">
        <TerminalStatus status={status} />
        {status.kind === "exited" || status.kind === "disconnected" ? (
          <button type="button" className="button button-small" onClick={() => setGeneration((g) => g + 1)}>
            {status.kind === "exited" ? "Start a new shell" : "Reconnect now"}
          </button>
        ) : null}
      </div>
      <div ref={host} className="terminal" data-testid="terminal" />
    </div>
  );
}

function TerminalStatus({ status }: { status: Status }) {
  switch (status.kind) {
    case "connecting":
      return (
        <span className="terminal-status" role="status">
          <span className="spinner" aria-hidden="true" /> Connecting…
        </span>
      );
    case "connected":
      return (
        <span
          className="terminal-status terminal-status-live"
          role="status"
          data-reattached={status.reattached}
        >
          ● {status.reattached ? "Reattached to your shell" : "Connected"}
        </span>
      );
    case "exited":
      return (
        <span className="terminal-status" role="status">
          The shell exited ({status.detail}).
        </span>
      );
    case "disconnected":
      return (
        <span className="terminal-status terminal-status-bad" role="status">
          Disconnected: {status.detail}. Reconnecting…
        </span>
      );
  }
}

function safeFit(fit: FitAddon): void {
  // fit() measures the element; a hidden one has no size, and that is fine to skip.
  try {
    fit.fit();
  } catch {
    /* not visible yet */
  }
}
