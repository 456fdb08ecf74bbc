/**
 * `polydev run keep RUN_ID`: keeps a finished run's change in its project (a commit on a
 * branch, then a fast-forward or merge), optionally pushes the branch and opens a pull request.
 */
import type { KeepRun } from "@polydev/sdk";
import { PolydevApiError } from "@polydev/sdk";
import { connect } from "./config.js";
import { EXIT_FAILED, EXIT_OK, parseCommand, runCommand, UsageError } from "./io.js";

export const RUN_KEEP_HELP = `Usage: polydev run keep [options] RUN_ID

Keeps what a finished run changed: its diff becomes a commit on a branch in the
project it came from (for a group, in the sandbox the group started from), and the
project's current branch is fast-forwarded or merged to it. A conflict is reported
with the conflicting files; the branch stays and the project is left as it was.

Options:
  --branch NAME      the branch (default polydev/<run id>)
  --message TEXT     the commit message (default: the prompt's first line)
  --push             push the branch to the project's origin (from the sandbox; a git
                     credential stored with \`PUT /v1/git-credentials/HOST\` is added by the
                     server and never enters the sandbox)
  --pr TITLE         open a pull request (GitHub) or merge request (GitLab); implies --push
  --pr-base BRANCH   the pull request's target (default: the project's current branch)
  --json             print the result as JSON

Example:
  polydev run keep run_abc123 --push --pr "Add the README"
`;

export function runKeep(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return runCommand("polydev run keep", async () => {
    const parsed = parseCommand(
      argv,
      {
        branch: { type: "string" },
        message: { type: "string" },
        push: { type: "boolean" },
        pr: { type: "string" },
        "pr-base": { type: "string" },
        json: { type: "boolean" },
      },
      RUN_KEEP_HELP,
    );
    if (!parsed) return EXIT_OK;
    const [id, ...extra] = parsed.positionals;
    if (!id || extra.length > 0) throw new UsageError("which run? polydev run keep RUN_ID");
    const v = parsed.values;
    if (v["pr-base"] !== undefined && v.pr === undefined)
      throw new UsageError("--pr-base goes with --pr TITLE");
    const body: KeepRun = {
      ...(v.branch === undefined ? {} : { branch: v.branch }),
      ...(v.message === undefined ? {} : { message: v.message }),
      ...(v.push || v.pr !== undefined ? { push: true } : {}),
      ...(v.pr === undefined
        ? {}
        : { pullRequest: { title: v.pr, ...(v["pr-base"] === undefined ? {} : { base: v["pr-base"] }) } }),
    };
    const { polydev } = await connect(env);
    try {
      const kept = await polydev.runs.keep(id, body);
      if (v.json) {
        process.stdout.write(`${JSON.stringify(kept, null, 2)}\n`);
        return EXIT_OK;
      }
      const say = (line: string) => process.stdout.write(`${line}\n`);
      say(`kept on branch ${kept.branch} (${kept.commit.slice(0, 12)})`);
      say(
        kept.merged
          ? "merged into the project's current branch"
          : "not merged (the project has no current branch)",
      );
      if (kept.pushed) say("pushed to origin");
      if (kept.pullRequestUrl) say(`pull request: ${kept.pullRequestUrl}`);
      if (kept.otherKeptRuns.length > 0)
        process.stderr.write(`note: this group already kept ${kept.otherKeptRuns.join(", ")}\n`);
      return EXIT_OK;
    } catch (error) {
      if (error instanceof PolydevApiError && error.code === "merge_conflict") {
        const paths = Array.isArray(error.details?.paths) ? (error.details.paths as string[]) : [];
        process.stderr.write(`polydev run keep: ${error.message}\n`);
        for (const path of paths) process.stderr.write(`  conflict: ${path}\n`);
        return EXIT_FAILED;
      }
      throw error;
    }
  });
}
