/**
 * `polydev run changes RUN_ID`: what a run in a project changed. The diff goes to stdout (so
 * `> change.patch` keeps a patch `git apply` takes); the file list and check go to stderr.
 */
import type { RunChanges } from "@polydev/sdk";
import { connect } from "./config.js";
import { EXIT_FAILED, EXIT_OK, parseCommand, runCommand, UsageError } from "./io.js";

export const RUN_CHANGES_HELP = `Usage: polydev run changes [options] RUN_ID

Shows what a run in a project changed: the files, the diff against the commit it
started from (on stdout) and its check's result. Exits 1 when the check failed.

Options:
  --stat     only the changed files and the check, no diff
  --json     print the changes as JSON

Example:
  polydev run changes run_abc123 > change.patch
`;

export function runChanges(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return runCommand("polydev run changes", async () => {
    const parsed = parseCommand(
      argv,
      { stat: { type: "boolean" }, json: { type: "boolean" } },
      RUN_CHANGES_HELP,
    );
    if (!parsed) return EXIT_OK;
    const [id, ...extra] = parsed.positionals;
    if (!id || extra.length > 0) throw new UsageError("which run? polydev run changes RUN_ID");
    const { polydev } = await connect(env);
    const changes = await polydev.runs.changes(id);
    if (parsed.values.json) process.stdout.write(`${JSON.stringify(changes, null, 2)}\n`);
    else printChanges(changes, parsed.values.stat === true);
    return changes.check && changes.check.exitCode !== 0 ? EXIT_FAILED : EXIT_OK;
  });
}

function printChanges(changes: RunChanges, statOnly: boolean): void {
  const note = (line: string) => process.stderr.write(`${line}\n`);
  note(`${changes.project} since ${changes.baseCommit?.slice(0, 12) ?? "(unknown commit)"}`);
  if (changes.error) note(`! ${changes.error}`);
  for (const file of changes.files) note(`  ${file.status.padEnd(2)} ${file.path}`);
  if (changes.files.length === 0) note("  (no changes)");
  if (changes.filesTruncated) note("  … more files than were kept");
  if (changes.check) {
    const mark = changes.check.exitCode === 0 ? "✓" : "✗";
    note(`${mark} check \`${changes.check.command}\` exited ${changes.check.exitCode ?? "without a code"}`);
    if (changes.check.exitCode !== 0 && changes.check.output.trim())
      note(changes.check.output.trim().split("\n").slice(-20).join("\n"));
  }
  const seconds = changes.durationMs === null ? "" : ` in ${(changes.durationMs / 1000).toFixed(1)}s`;
  const cost = changes.costUsd === null ? "" : `, $${changes.costUsd.toFixed(4)}`;
  note(`${changes.usage.inputTokens} in / ${changes.usage.outputTokens} out tokens${seconds}${cost}`);
  if (statOnly) return;
  process.stdout.write(changes.diff);
  if (changes.diffTruncated) note("! the diff was cut at 1 MiB; the rest is not kept");
}
