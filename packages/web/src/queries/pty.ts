/** The terminal's connection factory; components open terminals only through here. */
import type { PtyConnection, PtyHandlers } from "../api/pty-socket";
import { openPtySocket } from "../api/pty-socket";

export type { PtyConnection, PtyHandlers };

const storageKey = (sandboxId: string) => `polydev.pty.${sandboxId}`;

/**
 * The client-made reconnect id for this tab and sandbox: kept in sessionStorage so a reload
 * reattaches to the same shell, while another tab gets its own.
 */
export function reconnectIdFor(sandboxId: string): string {
  const stored = sessionStorage.getItem(storageKey(sandboxId));
  if (stored) return stored;
  const made = crypto.randomUUID().replaceAll("-", "");
  sessionStorage.setItem(storageKey(sandboxId), made);
  return made;
}

/** Forget the shell (after it exited), so the next connection starts a fresh one. */
export function forgetReconnectId(sandboxId: string): void {
  sessionStorage.removeItem(storageKey(sandboxId));
}

export function openTerminal(
  sandboxId: string,
  size: { cols: number; rows: number },
  handlers: PtyHandlers,
): PtyConnection {
  return openPtySocket(sandboxId, { ...size, reconnectId: reconnectIdFor(sandboxId) }, handlers);
}
