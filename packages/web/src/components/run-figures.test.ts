import { describe, expect, it } from "vitest";
import { formatCost, formatDuration, runTime } from "./run-figures";

describe("run figures", () => {
  it("reads durations in the largest unit that keeps them short", () => {
    expect(formatDuration(870)).toBe("0.9 s");
    expect(formatDuration(59_960)).toBe("1 min 0 s");
    expect(formatDuration(59_940)).toBe("59.9 s");
    expect(formatDuration(83_000)).toBe("1 min 23 s");
    expect(formatDuration(2 * 3600_000 + 5 * 60_000)).toBe("2 h 5 min");
  });

  it("keeps a cheap run's cost visible", () => {
    expect(formatCost(0)).toBe("$0");
    expect(formatCost(0.00042)).toBe("$0.0004");
    expect(formatCost(1.5)).toBe("$1.50");
  });

  it("times a run that ended, one still running, and one not started", () => {
    const startedAt = "2026-01-01T00:00:00.000Z";
    expect(runTime({ startedAt, endedAt: "2026-01-01T00:00:12.500Z" })).toEqual({
      label: "12.5 s",
      ms: 12_500,
    });
    expect(runTime({ startedAt, endedAt: null }, Date.parse(startedAt) + 3000)).toEqual({
      label: "3.0 s so far",
      ms: null,
    });
    expect(runTime({ startedAt: null, endedAt: null }).label).toBe("not started");
  });
});
