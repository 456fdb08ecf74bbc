/** Small statistics for benchmark samples (milliseconds). */
export function percentile(samples: number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index] ?? Number.NaN;
}

export interface Summary {
  p50: number;
  p95: number;
  n: number;
}

export function summarize(samples: number[]): Summary {
  return { p50: percentile(samples, 50), p95: percentile(samples, 95), n: samples.length };
}

export async function timeIt<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const start = process.hrtime.bigint();
  const value = await fn();
  return { ms: Number(process.hrtime.bigint() - start) / 1e6, value };
}

export const fmt = (ms: number): string => (Number.isFinite(ms) ? ms.toFixed(2) : "n/a");
