/** The terminal's connection factory; components open terminals only through here. */
import type { PtySession } from "@polydev/sdk";
import { polydev } from "../api/polydev";

export type { PtySession };

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

/**
 * Opens (or reattaches to) this tab's shell in the sandbox; resolves once the shell is ready.
 * `replay` asks for the recent screen again: wanted on a fresh page, not when the terminal still
 * shows it after a dropped connection.
 */
export function openTerminal(
  sandboxId: string,
  options: { cols: number; rows: number; replay: boolean; signal: AbortSignal },
): Promise<PtySession> {
  return polydev.sandboxes.pty(sandboxId, { ...options, reconnectId: reconnectIdFor(sandboxId) });
}
