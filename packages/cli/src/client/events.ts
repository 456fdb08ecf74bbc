/**
 * `polydev events`: follows your events (sandbox state changes, finished runs and logins,
 * quotas reached) until Ctrl-C, one line each; resumes by itself after a dropped connection.
 */
import type { PolydevEvent } from "@polydev/sdk";
import { connect } from "./config.js";
import { EXIT_OK, parseCommand, runCommand } from "./io.js";

export const EVENTS_HELP = `Usage: polydev events [options]

Follows your events as they happen until Ctrl-C: sandbox state changes (with the reason when
one fails), finished runs and logins, quotas reached.

Options:
  --all          every user's events (admins)
  --after ID     start after this event id (replays what the server still keeps)
  --json         print each event as one JSON line

Example:
  polydev events --json | jq 'select(.type == "run.finished")'
`;

export function events(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return runCommand("polydev events", async () => {
    const parsed = parseCommand(
      argv,
      { all: { type: "boolean" }, after: { type: "string" }, json: { type: "boolean" } },
      EVENTS_HELP,
    );
    if (!parsed) return EXIT_OK;
    const { values } = parsed;
    const { polydev } = await connect(env);
    const controller = new AbortController();
    const stop = (): void => controller.abort();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
    try {
      for await (const event of polydev.events({
        signal: controller.signal,
        ...(values.all ? { all: true } : {}),
        ...(values.after ? { after: values.after } : {}),
        maxReconnects: Number.POSITIVE_INFINITY,
      })) {
        process.stdout.write(values.json ? `${JSON.stringify(event)}\n` : `${describeEvent(event)}\n`);
      }
    } finally {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
    }
    return EXIT_OK;
  });
}

export function describeEvent(event: PolydevEvent): string {
  const at = new Date(event.at).toISOString();
  const d = event.data;
  const text = (value: unknown): string => (typeof value === "string" ? value : JSON.stringify(value));
  switch (event.type) {
    case "sandbox.state":
      return `${at} sandbox ${text(d.name ?? d.sandboxId)} ${text(d.state)}${d.reason ? `: ${text(d.reason)}` : ""}`;
    case "run.finished":
      return `${at} run ${text(d.runId)} (${text(d.agent)}) ${text(d.state)}${d.exitReason ? `: ${text(d.exitReason)}` : ""}`;
    case "login.finished":
      return `${at} login ${text(d.provider)} ${text(d.state)}${d.reason ? `: ${text(d.reason)}` : ""}`;
    case "quota.reached":
      return `${at} quota ${text(d.limit)} reached (${text(d.used)} of ${text(d.max)})`;
    default:
      return `${at} ${event.type} ${JSON.stringify(d)}`;
  }
}
