import { useState } from "react";
import { ErrorNotice } from "./error-notice";

/**
 * A follow-up box: the agent answers it in the same session once its turn has ended. `send`
 * resolves when the server took the follow-up; the box clears then.
 */
export function RunReplyBox({
  label,
  ready,
  pending,
  error,
  send,
}: {
  label: string;
  /** Every run addressed has ended its turn (a running one answers 409 run_in_progress). */
  ready: boolean;
  pending: boolean;
  error: unknown;
  send: (prompt: string) => Promise<unknown>;
}) {
  const [prompt, setPrompt] = useState("");
  const text = prompt.trim();
  return (
    <form
      className="run-reply"
      aria-label={label}
      onSubmit={(event) => {
        event.preventDefault();
        if (!text || !ready) return;
        send(text).then(
          () => setPrompt(""),
          () => undefined,
        );
      }}
    >
      <textarea
        className="input"
        rows={2}
        placeholder={ready ? "Reply to the agent…" : "You can reply once the agent has finished its turn"}
        value={prompt}
        onChange={(event) => setPrompt(event.target.value)}
        onKeyDown={(event) => {
          // Ctrl/Cmd+Enter sends, as in most chat boxes; Enter alone makes a new line.
          if (event.key === "Enter" && (event.ctrlKey || event.metaKey))
            event.currentTarget.form?.requestSubmit();
        }}
        aria-label={label}
        disabled={pending}
      />
      <button type="submit" className="button button-primary" disabled={!ready || !text || pending}>
        {pending ? "Sending…" : "Send"}
      </button>
      {error ? <ErrorNotice error={error} title="The follow-up was not sent" /> : null}
    </form>
  );
}
