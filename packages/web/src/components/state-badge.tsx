const TONES: Record<string, string> = {
  running: "good",
  succeeded: "good",
  ready: "good",
  completed: "good",
  creating: "busy",
  building: "busy",
  queued: "busy",
  starting: "busy",
  completing: "busy",
  destroying: "busy",
  awaiting_user: "attention",
  hibernated: "calm",
  stopped: "calm",
  destroyed: "calm",
  cancelled: "calm",
  failed: "bad",
  timed_out: "bad",
};

export function StateBadge({ state }: { state: string }) {
  const tone = TONES[state] ?? "calm";
  return (
    <span className={`badge badge-${tone}`} data-state={state}>
      {tone === "busy" ? <span className="spinner" aria-hidden="true" /> : null}
      {state.replace("_", " ")}
    </span>
  );
}
