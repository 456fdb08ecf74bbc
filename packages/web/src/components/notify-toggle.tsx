import "./notify-toggle.css";
import { useRunNotifications } from "../queries/run-notifications";

/** The top bar's switch for browser notifications when runs and groups end. */
export function NotifyToggle() {
  const { state, enable, disable } = useRunNotifications();
  if (state === "unsupported") return null;
  if (state === "denied") {
    return (
      <span
        className="muted small"
        title="This browser blocks Polydev's notifications; allow them in the site settings, then reload"
      >
        Notifications blocked
      </span>
    );
  }
  const on = state === "on";
  return (
    <button
      type="button"
      className="button button-small notify-toggle"
      aria-pressed={on}
      title={
        on ? "Stop notifying me in this browser" : "Show a browser notification when a run or group ends"
      }
      onClick={() => (on ? disable() : void enable())}
    >
      {/* A phone's top bar has room for one word; aria-pressed says whether it is on. */}
      <span className="notify-wide">{on ? "Notifications on" : "Notify me when runs end"}</span>
      <span className="notify-narrow">Notify</span>
    </button>
  );
}
