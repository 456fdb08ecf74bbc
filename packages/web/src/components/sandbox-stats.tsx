import { useQuery } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import type { Sandbox } from "../api/types";
import { sandboxStatsQuery } from "../queries/sandboxes";
import { formatBytes } from "./format";

/** The last CPU sample per sandbox, kept across pages so a revisit shows a figure at once. */
const lastSamples = new Map<string, { cpuNs: number; atMs: number }>();

/**
 * Live CPU and memory of a running sandbox. The API reports cumulative CPU time, so the share of
 * its cores comes from the difference between two polls.
 */
export function useLiveStats(sandbox: Sandbox) {
  const running = sandbox.state === "running";
  const stats = useQuery(sandboxStatsQuery(sandbox.id, running));
  const [cpuPercent, setCpuPercent] = useState<number | null>(null);
  useEffect(() => {
    if (!stats.data) return;
    const now = { cpuNs: stats.data.cpuUsageNs, atMs: stats.dataUpdatedAt };
    const before = lastSamples.get(sandbox.id);
    if (before && now.atMs > before.atMs && now.cpuNs >= before.cpuNs) {
      const share = (now.cpuNs - before.cpuNs) / ((now.atMs - before.atMs) * 1e6) / sandbox.cpu;
      setCpuPercent(Math.min(100, Math.max(0, share * 100)));
    }
    if (!before || now.atMs > before.atMs) lastSamples.set(sandbox.id, now);
  }, [stats.data, stats.dataUpdatedAt, sandbox.id, sandbox.cpu]);
  return { running, stats: stats.data, cpuPercent, error: stats.error };
}

function Meter({ label, fraction, text }: { label: string; fraction: number; text: string }) {
  const percent = Math.round(Math.min(1, Math.max(0, fraction)) * 100);
  return (
    <div className="meter" title={`${label}: ${text}`}>
      <span className="meter-label">{label}</span>
      <span className="meter-track" aria-hidden="true">
        <span className="meter-fill" style={{ width: `${percent}%` }} />
      </span>
      <span className="meter-text">{text}</span>
    </div>
  );
}

export function SandboxStats({ sandbox }: { sandbox: Sandbox }) {
  const { running, stats, cpuPercent } = useLiveStats(sandbox);
  if (!running) return <span className="muted">—</span>;
  if (!stats) return <span className="muted">measuring…</span>;
  const limit = stats.memoryLimitBytes > 0 ? stats.memoryLimitBytes : sandbox.memoryMb * 1024 * 1024;
  return (
    <div className="meters" data-testid="live-stats">
      <Meter
        label="CPU"
        fraction={(cpuPercent ?? 0) / 100}
        text={cpuPercent === null ? "…" : `${cpuPercent.toFixed(cpuPercent < 10 ? 1 : 0)}%`}
      />
      <Meter label="Mem" fraction={stats.memoryBytes / limit} text={formatBytes(stats.memoryBytes)} />
    </div>
  );
}
