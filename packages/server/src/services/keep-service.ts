/**
 * Keeping a run's change: its recorded diff becomes a commit on a branch in the ORIGINAL project
 * folder (for a group, in the sandbox the group started from, not the fork the winner worked
 * in), based on the commit the run started from; then the project's current branch is
 * fast-forwarded or merged, the branch pushed and a pull request opened if asked. All git work
 * runs inside the sandbox; the host only relays authenticated git HTTP (git-relay.ts) and calls
 * the forge's API, so a git token never enters the sandbox.
 *
 * Conflicts are shown, not lost: the branch stays, the merge is aborted (the working tree is as
 * it was) and the answer names the conflicting paths.
 */
import { posix } from "node:path";
import { Readable } from "node:stream";
import type {
  AgentConnection,
  RunChangesRecord,
  RunKeepRecord,
  RunRecord,
  RunState,
  Store,
} from "@polydev/core";
import { FINAL_RUN_STATES, PolydevError } from "@polydev/core";
import type { Logger } from "pino";
import { openPullRequest } from "./forges/pull-requests.js";
import { type GitAccess, httpHost } from "./git-access.js";
import { remoteTarget } from "./git-relay.js";
import { KeyedLock } from "./keyed-lock.js";
import { runInSandbox } from "./sandbox-command.js";

const GIT_TIMEOUT_MS = 120_000;
const PUSH_TIMEOUT_MS = 10 * 60_000;
/** Conflicting paths reported at most (their names come from the sandbox). */
const MAX_CONFLICT_PATHS = 200;

export interface KeepInput {
  branch?: string | undefined;
  message?: string | undefined;
  push?: boolean | undefined;
  pullRequest?:
    | { title?: string | undefined; body?: string | undefined; base?: string | undefined }
    | undefined;
}

export interface KeepResult extends RunKeepRecord {
  /** Other runs of the same group kept before this one (keeping a second one is allowed, and said). */
  otherKeptRuns: string[];
}

/**
 * git check-ref-format's rules for a branch name (refs/heads/<name>), so a bad name is a clear 400
 * before anything runs, and nothing that git could read as an option reaches its argv.
 */
export function branchNameProblem(name: string): string | undefined {
  if (name.length === 0 || name.length > 200) return "a branch name is 1–200 characters";
  if (name.startsWith("-")) return "a branch name must not start with -";
  if (name === "@" || name === "HEAD") return `${name} is not a branch name`;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what git refuses.
  if (/[\x00-\x20\x7f~^:?*[\\]/.test(name))
    return "a branch name must not contain spaces, control characters or any of ~ ^ : ? * [ \\";
  if (name.includes("..")) return "a branch name must not contain ..";
  if (name.includes("@{")) return "a branch name must not contain @{";
  if (name.endsWith("/") || name.endsWith(".") || name.startsWith("/") || name.includes("//"))
    return "a branch name must not start or end with / or end with ., nor contain //";
  for (const part of name.split("/"))
    if (part.startsWith(".") || part.endsWith(".lock"))
      return "no part of a branch name may start with . or end with .lock";
  return undefined;
}

/** Builds the commit on the branch and merges it; see the exit codes in keepOutcome. */
const KEEP_SCRIPT = String.raw`
diff="$(pwd)/$2"; branch="$3"; base="$4"; msg="$5"
cd -- "$1" || exit 10
git cat-file -e "$base^{commit}" 2>/dev/null || exit 11
i=$(mktemp) && w=$(mktemp) || exit 12
trap 'rm -f "$i" "$w"' EXIT
GIT_INDEX_FILE="$i" git read-tree "$base" || exit 12
GIT_INDEX_FILE="$i" git apply --cached --whitespace=nowarn -- "$diff" >&2 || exit 13
tree=$(GIT_INDEX_FILE="$i" git write-tree) || exit 12
if existing=$(git rev-parse -q --verify "refs/heads/$branch^{commit}"); then
  [ "$(git rev-parse "$existing^{tree}")" = "$tree" ] || exit 14
  commit=$existing
else
  commit=$(git commit-tree "$tree" -p "$base" -m "$msg") || exit 12
  git update-ref "refs/heads/$branch" "$commit" "" || exit 14
fi
printf 'commit %s\n' "$commit"
current=$(git symbolic-ref -q --short HEAD) || { echo "merge detached"; exit 0; }
printf 'current %s\n' "$current"
head=$(git rev-parse -q --verify HEAD) || exit 12
if git merge-base --is-ancestor "$commit" "$head"; then echo "merge already"; exit 0; fi
GIT_INDEX_FILE="$w" git read-tree "$head" && GIT_INDEX_FILE="$w" git add -A . || exit 12
working=$(GIT_INDEX_FILE="$w" git write-tree) || exit 12
if [ "$working" != "$(git rev-parse "$head^{tree}")" ]; then
  # The run worked in this very folder: the change is already on disk, only the branch moves.
  if [ "$head" = "$base" ] && [ "$working" = "$tree" ]; then
    git update-ref "refs/heads/$current" "$commit" "$head" && git reset -q && { echo "merge fast-forward"; exit 0; }
    exit 12
  fi
  exit 15
fi
if [ "$head" = "$base" ]; then
  git merge -q --ff-only "$commit" >&2 && { echo "merge fast-forward"; exit 0; }
  exit 12
fi
if git merge -q --no-ff --no-edit -m "Merge branch '$branch'" "$commit" >&2; then echo "merge merged"; exit 0; fi
git diff --name-only --diff-filter=U -z
git merge --abort >&2
exit 16
`;

export class KeepService {
  private readonly locks = new KeyedLock();

  constructor(
    private readonly store: Store,
    private readonly connectTo: (userId: string, sandboxId: string) => Promise<AgentConnection>,
    private readonly git: GitAccess,
    private readonly log: Logger,
    private readonly now: () => number,
  ) {}

  async keep(userId: string, runId: string, input: KeepInput): Promise<KeepResult> {
    const run = await this.store.runs.getForUser(userId, runId);
    if (!run) throw new PolydevError("not_found", `run ${runId} does not exist`);
    if (!FINAL_RUN_STATES.includes(run.state as RunState))
      throw new PolydevError(
        "run_not_finished",
        `run ${runId} is ${run.state}; keep its change once it has ended`,
      );
    const changes = await this.store.runs.getChanges(run.id);
    if (!changes)
      throw new PolydevError(
        "nothing_to_keep",
        `run ${runId} worked in no project, so it has no change to keep`,
      );
    if (changes.baseCommit === null || changes.files.length === 0 || changes.diff === "")
      throw new PolydevError(
        "nothing_to_keep",
        `run ${runId} changed nothing in ${changes.project}${changes.error ? ` (${changes.error})` : ""}`,
      );
    if (changes.diffTruncated || changes.filesTruncated)
      throw new PolydevError(
        "nothing_to_keep",
        `run ${runId}'s diff was cut at its size limit when it was recorded, so it cannot be applied whole`,
      );
    if (input.pullRequest && !input.push)
      throw new PolydevError(
        "invalid_request",
        "a pull request needs the branch pushed: send push: true too",
      );
    const branch = input.branch ?? `polydev/${run.id.replace(/^run_/, "").slice(0, 8)}`;
    const problem = branchNameProblem(branch);
    if (problem) throw new PolydevError("invalid_request", `branch ${JSON.stringify(branch)}: ${problem}`);

    const sandboxId = changes.projectSandboxId ?? run.sandboxId;
    // Two keeps into one project at once would race for git's index lock: one after the other.
    return this.locks.run(`${sandboxId}\0${changes.project}`, () =>
      this.keepIn(
        userId,
        run,
        { ...changes, baseCommit: changes.baseCommit as string },
        sandboxId,
        branch,
        input,
      ),
    );
  }

  private async keepIn(
    userId: string,
    run: RunRecord,
    changes: RunChangesRecord & { baseCommit: string },
    sandboxId: string,
    branch: string,
    input: KeepInput,
  ): Promise<KeepResult> {
    const runId = run.id;
    const connection = await this.connectTo(userId, sandboxId);
    // What a push and a pull request need is checked before anything changes in the project.
    const origin = input.push ? await this.originOf(connection, changes.project) : undefined;
    const forgeCredential =
      origin && input.pullRequest ? await this.pullRequestCredential(userId, origin) : undefined;
    const message = (input.message ?? defaultMessage(run)).slice(0, 16 * 1024);
    const outcome = await this.commitAndMerge(
      connection,
      run,
      changes.project,
      changes.baseCommit,
      changes.diff,
      branch,
      message,
    );
    const otherKeptRuns = run.groupId
      ? (await this.store.runs.keepsOfGroup(run.groupId)).map((k) => k.runId).filter((id) => id !== run.id)
      : [];
    const keep: RunKeepRecord = {
      runId: run.id,
      groupId: run.groupId,
      branch,
      commit: outcome.commit,
      merged: outcome.merged,
      pushed: false,
      pullRequestUrl: null,
      keptAt: this.now(),
    };
    await this.store.runs.putKeep(keep);
    if (outcome.conflicts)
      throw new PolydevError(
        "merge_conflict",
        `the change of run ${runId} conflicts with ${outcome.current} in ${changes.project} (${outcome.conflicts.slice(0, 5).join(", ")}${outcome.conflicts.length > 5 ? ", …" : ""}); it is kept on branch ${branch}, and the project was left as it was`,
        { details: { paths: outcome.conflicts, branch, commit: outcome.commit } },
      );
    if (origin) {
      await this.pushBranch(userId, connection, changes.project, origin, branch);
      keep.pushed = true;
      await this.store.runs.putKeep(keep);
      if (input.pullRequest && forgeCredential) {
        keep.pullRequestUrl = await openPullRequest(
          forgeCredential.credential,
          forgeCredential.target,
          {
            title: (input.pullRequest.title ?? firstLine(run.prompt)).slice(0, 256),
            body: (input.pullRequest.body ?? `Kept from Polydev run ${run.id} (${run.agent}).`).slice(
              0,
              64 * 1024,
            ),
            head: branch,
            base: input.pullRequest.base ?? outcome.current ?? "main",
          },
          this.git.insecureHosts,
        );
        await this.store.runs.putKeep(keep);
      }
    }
    return { ...keep, otherKeptRuns };
  }

  async get(userId: string, runId: string): Promise<RunKeepRecord | undefined> {
    const run = await this.store.runs.getForUser(userId, runId);
    if (!run) throw new PolydevError("not_found", `run ${runId} does not exist`);
    return this.store.runs.getKeep(run.id);
  }

  private async commitAndMerge(
    connection: AgentConnection,
    run: RunRecord,
    project: string,
    baseCommit: string,
    diff: string,
    branch: string,
    message: string,
  ): Promise<{ commit: string; merged: boolean; current: string | undefined; conflicts?: string[] }> {
    // The diff goes in as a file beside the projects (the sandbox's own disk), removed after.
    const diffPath = posix.join(".cache", "polydev", `keep-${run.id}.diff`);
    await runInSandbox(connection, {
      argv: ["mkdir", "-p", posix.dirname(diffPath)],
      timeoutMs: GIT_TIMEOUT_MS,
      maxStdoutBytes: 0,
    });
    await connection.files.write(diffPath, Readable.from([Buffer.from(diff)]), { mode: 0o600 });
    let result: Awaited<ReturnType<typeof runInSandbox>>;
    try {
      result = await runInSandbox(connection, {
        argv: ["/bin/sh", "-c", KEEP_SCRIPT, "sh", project, diffPath, branch, baseCommit, message],
        env: {
          GIT_AUTHOR_NAME: `${run.agent} (Polydev)`,
          GIT_AUTHOR_EMAIL: "polydev@localhost",
          GIT_COMMITTER_NAME: "Polydev",
          GIT_COMMITTER_EMAIL: "polydev@localhost",
          GIT_TERMINAL_PROMPT: "0",
        },
        timeoutMs: GIT_TIMEOUT_MS,
        maxStdoutBytes: 64 * 1024,
      });
    } finally {
      await runInSandbox(connection, {
        argv: ["rm", "-f", "--", diffPath],
        timeoutMs: GIT_TIMEOUT_MS,
        maxStdoutBytes: 0,
      }).catch(() => undefined);
    }
    const code = result.exit.exitCode;
    const said = lastLines(result.stderr.text);
    const out = result.stdout.text;
    const commit = /^commit ([0-9a-f]{40,64})$/m.exec(out)?.[1];
    const current = /^current (.+)$/m.exec(out)?.[1];
    switch (code) {
      case 0: {
        if (!commit) break;
        const merge = /^merge (\S+)$/m.exec(out)?.[1];
        return { commit, merged: merge !== "detached", current };
      }
      case 10:
        throw new PolydevError("not_a_project", `the project folder ${project} is gone from the sandbox`);
      case 11:
        throw new PolydevError(
          "nothing_to_keep",
          `the run's base commit ${baseCommit.slice(0, 12)} is not in ${project} any more`,
        );
      case 13:
        throw new PolydevError(
          "nothing_to_keep",
          `the run's diff does not apply to its base commit: ${said}`,
        );
      case 14:
        throw new PolydevError(
          "branch_exists",
          `branch ${branch} already exists in ${project} with other content; name another with branch`,
        );
      case 15:
        throw new PolydevError(
          "project_dirty",
          `${project} has uncommitted changes; commit or discard them, then keep again (branch ${branch} holds the run's change)`,
          { details: { branch, commit } },
        );
      case 16: {
        const tail = out.slice(out.lastIndexOf("\n") + 1);
        const paths = tail.split("\0").filter(Boolean).slice(0, MAX_CONFLICT_PATHS);
        if (!commit) break;
        return { commit, merged: false, current, conflicts: paths };
      }
    }
    this.log.warn({ runId: run.id, exitCode: code }, "keeping a run's change failed");
    throw new PolydevError("command_failed", `git could not keep the change in ${project}: ${said}`);
  }

  /** The project's origin URL; `push_failed` when it has none. */
  private async originOf(connection: AgentConnection, project: string): Promise<string> {
    const remote = await runInSandbox(connection, {
      argv: ["git", "remote", "get-url", "origin"],
      cwd: project,
      timeoutMs: GIT_TIMEOUT_MS,
      maxStdoutBytes: 8192,
    });
    const url = remote.stdout.text.trim();
    if (remote.exit.exitCode !== 0 || !url)
      throw new PolydevError("push_failed", `${project} has no remote named origin to push to`);
    return url;
  }

  /** A pull request is opened by the server with the user's token for the remote's host. */
  private async pullRequestCredential(userId: string, url: string) {
    const host = httpHost(url);
    const credential = host ? await this.git.credentialFor(userId, host) : undefined;
    if (!credential)
      throw new PolydevError(
        "credential_missing",
        `opening a pull request needs a git credential for the remote's host (${withoutUserInfo(url)}): PUT /v1/git-credentials/{host}`,
      );
    return { credential, target: remoteTarget(url, this.git.insecureHosts) };
  }

  /** Pushes the branch to origin from inside the sandbox (through the relay when a token is stored). */
  private async pushBranch(
    userId: string,
    connection: AgentConnection,
    project: string,
    url: string,
    branch: string,
  ): Promise<void> {
    const refspec = `refs/heads/${branch}:refs/heads/${branch}`;
    await this.git.run(userId, connection, url, async (via) => {
      const pushed = await runInSandbox(connection, {
        argv: [
          "git",
          "-c",
          "credential.helper=",
          "-c",
          "http.followRedirects=false",
          "push",
          "--porcelain",
          "--",
          via,
          refspec,
        ],
        cwd: project,
        env: { GIT_TERMINAL_PROMPT: "0", GIT_ASKPASS: "/bin/false", SSH_ASKPASS: "/bin/false" },
        timeoutMs: PUSH_TIMEOUT_MS,
        maxStdoutBytes: 64 * 1024,
      });
      if (pushed.exit.exitCode !== 0)
        throw new PolydevError(
          "push_failed",
          `git push of ${branch} to ${withoutUserInfo(url)} failed in the sandbox${pushed.exit.timedOut ? " (timed out)" : ""}: ${lastLines(pushed.stderr.text)}`,
        );
    });
  }
}

/** A remote URL as shown in an answer: a password written into it stays out. */
function withoutUserInfo(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@]*@/i, "$1");
}

function defaultMessage(run: RunRecord): string {
  return `${firstLine(run.prompt)}\n\nKept from Polydev run ${run.id} (${run.agent}).`;
}

function firstLine(text: string): string {
  const line = text.trim().split("\n")[0] ?? "";
  return line.length > 72 ? `${line.slice(0, 71)}…` : line || "Polydev change";
}

function lastLines(text: string): string {
  return text.trim().split("\n").slice(-3).join(" / ") || "no output";
}
