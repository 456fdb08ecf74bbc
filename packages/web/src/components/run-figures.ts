/** How a compared run's time and cost read. */

/** 870 ms → "0.9 s", 83 s → "1 min 23 s". */
export function formatDuration(ms: number): string {
  const seconds = ms / 1000;
  // Below 59.95 s, one decimal; from there "60.0 s" would read oddly, so minutes take over.
  if (ms < 59_950) return `${seconds.toFixed(1)} s`;
  const whole = Math.round(seconds);
  const minutes = Math.floor(whole / 60);
  if (minutes < 60) return `${minutes} min ${whole % 60} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

/** Dollars with enough digits that a cheap run is not "$0.00". */
export function formatCost(usd: number): string {
  if (usd === 0) return "$0";
  if (usd < 0.01) return `$${usd.toFixed(4)}`;
  return `$${usd.toFixed(2)}`;
}

/** A run's time so far: ended, still running (from `nowMs`), or not started. */
export function runTime(
  run: { startedAt: string | null; endedAt: string | null },
  nowMs = Date.now(),
): { label: string; ms: number | null } {
  if (run.startedAt === null) return { label: "not started", ms: null };
  const started = Date.parse(run.startedAt);
  if (run.endedAt === null) return { label: `${formatDuration(nowMs - started)} so far`, ms: null };
  const ms = Date.parse(run.endedAt) - started;
  return { label: formatDuration(ms), ms };
}
