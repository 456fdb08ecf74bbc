/**
 * `polydev run reply RUN_ID PROMPT`: a follow-up to a finished run, which its agent answers in the
 * same session (same sandbox, same folder, its earlier turns remembered); followed live like
 * `polydev run`. With --group, the same follow-up goes to every run of a group.
 */
import type { Run } from "@polydev/sdk";
import { connect } from "./config.js";
import { EXIT_FAILED, EXIT_OK, parseCommand, readStdin, runCommand, UsageError, withSpinner } from "./io.js";
import { follow, RunOutput } from "./run.js";

export const RUN_REPLY_HELP = `Usage: polydev run reply [options] RUN_ID PROMPT...
       polydev run reply [options] --group GROUP_ID PROMPT...

Sends a follow-up to a finished run: its agent continues the same session (Claude
Code, Codex and the Gemini CLI resume their own session, the built-in agent keeps
its history) in the same sandbox and folder, and the answer streams like polydev
run's. Without a PROMPT argument the prompt is read from stdin. Ctrl-C cancels the
turn on the server. Exits 0 when every turn succeeded, 1 otherwise.

Options:
  --group ID   send it to every run of this group (from polydev run --agents …)
  --json       print every event as one JSON line on stdout instead

Example:
  polydev run reply run_abc123 "now add a test for it"
`;

export function runReply(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return runCommand("polydev run reply", async () => {
    const parsed = parseCommand(
      argv,
      { group: { type: "string" }, json: { type: "boolean" } },
      RUN_REPLY_HELP,
    );
    if (!parsed) return EXIT_OK;
    const group = parsed.values.group;
    const words = [...parsed.positionals];
    const id = group === undefined ? words.shift() : undefined;
    if (group === undefined && !id) throw new UsageError('which run? polydev run reply RUN_ID "PROMPT"');
    let prompt = words.join(" ").trim();
    if (!prompt && !process.stdin.isTTY) prompt = (await readStdin()).trim();
    if (!prompt)
      throw new UsageError(`what should the agent do next? polydev run reply ${id ?? "--group ID"} "PROMPT"`);

    const { polydev } = await connect(env);
    const turns = await withSpinner("Sending the follow-up", async () =>
      group !== undefined
        ? (await polydev.runs.replyToGroup(group, prompt)).turns
        : [await polydev.runs.reply(id ?? "", prompt)],
    );
    const output = new RunOutput(parsed.values.json === true, turns.length > 1);
    let cancelling = false;
    const onInterrupt = (): void => {
      if (cancelling) process.exit(130);
      cancelling = true;
      process.stderr.write("\nCancelling (Ctrl-C again to leave without waiting)…\n");
      for (const t of turns) polydev.runs.cancel(t.run.id).catch(() => undefined);
    };
    process.on("SIGINT", onInterrupt);
    try {
      const finals = await Promise.all(turns.map((t) => follow(polydev, t.run as Run, output, t.afterSeq)));
      return finals.every((state) => state === "succeeded") ? EXIT_OK : EXIT_FAILED;
    } finally {
      process.off("SIGINT", onInterrupt);
    }
  });
}
