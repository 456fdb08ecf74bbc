import "@xterm/xterm/css/xterm.css";
import { FitAddon } from "@xterm/addon-fit";
import { Terminal } from "@xterm/xterm";
import { useEffect, useRef, useState } from "react";
import type { PtySession } from "../queries/pty";
import { forgetReconnectId, openTerminal } from "../queries/pty";
import { ErrorNotice } from "./error-notice";

type Status =
  | { kind: "connecting" }
  | { kind: "connected"; reattached: boolean }
  | { kind: "exited"; detail: string }
  | { kind: "disconnected"; detail: string }
  | { kind: "failed"; error: unknown };

const RETRY_MS = 1500;

/**
 * xterm.js over the sandbox's PTY. The reconnect id lives in sessionStorage, so a reload
 * reattaches to the same shell (and the server replays its recent output).
 */
export function TerminalView({ sandboxId, visible }: { sandboxId: string; visible: boolean }) {
  const host = useRef<HTMLDivElement>(null);
  const fitRef = useRef<FitAddon | null>(null);
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
      lineHeight: 1.15,
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
    const stop = new AbortController();
    let session: PtySession | null = null;
    let retry: ReturnType<typeof setTimeout> | undefined;

    const connect = async (replay: boolean): Promise<void> => {
      setStatus({ kind: "connecting" });
      let opened: PtySession;
      try {
        opened = await openTerminal(sandboxId, {
          cols: terminal.cols,
          rows: terminal.rows,
          replay,
          signal: stop.signal,
        });
      } catch (error) {
        if (!stop.signal.aborted) setStatus({ kind: "failed", error });
        return;
      }
      if (stop.signal.aborted) {
        opened.close();
        return;
      }
      session = opened;
      opened.onData((bytes) => terminal.write(bytes));
      opened.onExit(({ exitCode, signal }) => {
        forgetReconnectId(sandboxId);
        setStatus({ kind: "exited", detail: signal ? `signal ${signal}` : `exit code ${exitCode ?? "?"}` });
      });
      opened.onDisconnect((reason) => {
        session = null;
        setStatus({ kind: "disconnected", detail: reason });
        // A dropped connection (server restart, network blip) is retried on its own; the same
        // reconnect id brings the same shell back, and the screen here is still current.
        retry = setTimeout(() => void connect(false), RETRY_MS);
      });
      // The window may have been resized while the socket opened.
      opened.resize(terminal.cols, terminal.rows);
      setStatus({ kind: "connected", reattached: opened.reattached });
      terminal.focus();
    };
    void connect(true);

    const input = terminal.onData((data) => session?.write(data));
    const binary = terminal.onBinary((data) =>
      session?.write(Uint8Array.from(data, (c) => c.charCodeAt(0) & 0xff)),
    );
    const resized = terminal.onResize(({ cols, rows }) => session?.resize(cols, rows));
    const observer = new ResizeObserver(() => safeFit(fit));
    observer.observe(element);

    return () => {
      stop.abort();
      if (retry) clearTimeout(retry);
      observer.disconnect();
      input.dispose();
      binary.dispose();
      resized.dispose();
      session?.close();
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
        {status.kind === "exited" || status.kind === "disconnected" || status.kind === "failed" ? (
          <button type="button" className="button button-small" onClick={() => setGeneration((g) => g + 1)}>
            {status.kind === "exited"
              ? "Start a new shell"
              : status.kind === "failed"
                ? "Try again"
                : "Reconnect now"}
          </button>
        ) : null}
      </div>
      {status.kind === "failed" ? (
        <ErrorNotice error={status.error} title="The terminal could not connect" />
      ) : null}
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
    case "failed":
      return (
        <span className="terminal-status terminal-status-bad" role="status">
          Not connected
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
