/**
 * Projects: git repositories in a sandbox's `projects/` folder. The clone runs inside the sandbox
 * (over the sandbox's own egress), never on the host; the server only reads bounded answers of
 * git. The sandbox is the source of truth for which projects exist, so nothing here is stored.
 */
import type { AgentConnection, ChangedFile, RunChangesRecord } from "@polydev/core";
import { PolydevError } from "@polydev/core";
import { runInSandbox } from "./sandbox-command.js";

export const PROJECTS_DIR = "projects";
const CLONE_TIMEOUT_MS = 10 * 60_000;
const GIT_TIMEOUT_MS = 60_000;
const MAX_LIST_BYTES = 256 * 1024;
/** What one run may store of its diff, its file list and its check's output. */
export const MAX_DIFF_BYTES = 1024 * 1024;
export const MAX_CHANGED_FILES = 2000;
export const MAX_CHECK_OUTPUT_BYTES = 64 * 1024;
/** The git config key (in the project's own config) naming its default check. */
const CHECK_KEY = "polydev.check";
/** Commits the server makes in a sandbox (an existing folder turned into a project) need an author. */
const GIT_IDENTITY = ["-c", "user.name=Polydev", "-c", "user.email=polydev@localhost"];

export interface ProjectInfo {
  name: string;
  path: string;
  url: string | null;
  head: string | null;
  branch: string | null;
  check: string | null;
}

export type AddProjectInput =
  | { url: string; ref?: string | undefined; name?: string | undefined; check?: string | undefined }
  | { path: string; name?: string | undefined; check?: string | undefined }
  | { archive: string; name?: string | undefined; check?: string | undefined };

/** `https://host/org/app.git` → `app`; null when nothing usable is left. */
export function projectNameFromUrl(url: string): string | null {
  const last = url.replace(/\/+$/, "").split(/[/:]/).pop() ?? "";
  const name = last.replace(/\.git$/, "");
  return /^[A-Za-z0-9._-]{1,100}$/.test(name) && name !== "." && name !== ".." ? name : null;
}

/**
 * Runs a clone with the URL git should fetch from: the relay's for a host the user stored a git
 * token for (the token stays on the host), else the URL itself. Default: the URL itself.
 */
export type CloneVia = <T>(url: string, clone: (via: string) => Promise<T>) => Promise<T>;

export async function addProject(
  connection: AgentConnection,
  input: AddProjectInput,
  cloneVia: CloneVia = (url, clone) => clone(url),
): Promise<ProjectInfo> {
  const name =
    input.name ??
    ("url" in input
      ? projectNameFromUrl(input.url)
      : "path" in input
        ? lastSegment(input.path)
        : lastSegment(input.archive.replace(/\.(?:tar(?:\.(?:gz|bz2|xz|zst))?|tgz|zip)$/, "")));
  if (!name)
    throw new PolydevError("invalid_request", "give the project a name (name: letters, digits, . _ -)");
  const path = `${PROJECTS_DIR}/${name}`;
  const exists = await runInSandbox(connection, {
    argv: ["test", "-e", path],
    timeoutMs: GIT_TIMEOUT_MS,
    maxStdoutBytes: 0,
  });
  if (exists.exit.exitCode === 0)
    throw new PolydevError("name_taken", `project ${name} already exists (${path})`);
  await sandboxStep(connection, ["mkdir", "-p", PROJECTS_DIR], "could not create the projects folder");
  if ("url" in input) {
    // "--" ends git's options: a URL is never read as one.
    const clone = await cloneVia(input.url, (via) =>
      runInSandbox(connection, {
        argv: ["git", "clone", "--quiet", ...(input.ref ? ["--no-checkout"] : []), "--", via, path],
        env: { GIT_TERMINAL_PROMPT: "0" },
        timeoutMs: CLONE_TIMEOUT_MS,
        maxStdoutBytes: 0,
      }),
    );
    if (clone.exit.exitCode !== 0) {
      await runInSandbox(connection, {
        argv: ["rm", "-rf", "--", path],
        timeoutMs: GIT_TIMEOUT_MS,
        maxStdoutBytes: 0,
      });
      throw new PolydevError(
        "clone_failed",
        `git clone ${input.url} failed in the sandbox${clone.exit.timedOut ? " (timed out)" : ""}: ${lastLines(clone.stderr.text)}`,
      );
    }
    // Cloned through the relay, origin names the relay's passing port: it names the remote again.
    await sandboxStep(
      connection,
      ["git", "-C", path, "remote", "set-url", "--", "origin", input.url],
      "could not set the project's origin",
    );
    if (input.ref) {
      const checkout = await runInSandbox(connection, {
        argv: ["git", "checkout", "--quiet", input.ref, "--"],
        cwd: path,
        timeoutMs: GIT_TIMEOUT_MS,
        maxStdoutBytes: 0,
      });
      if (checkout.exit.exitCode !== 0) {
        await runInSandbox(connection, {
          argv: ["rm", "-rf", "--", path],
          timeoutMs: GIT_TIMEOUT_MS,
          maxStdoutBytes: 0,
        });
        throw new PolydevError(
          "clone_failed",
          `ref ${input.ref} is not in ${input.url}: ${lastLines(checkout.stderr.text)}`,
        );
      }
    }
  } else if ("archive" in input) {
    // Unpacked by tar (or unzip) inside the sandbox, into the project's own folder, then made a
    // repository like an existing folder.
    const unpack = await runInSandbox(connection, {
      argv: [
        "/bin/sh",
        "-c",
        'mkdir -p -- "$2" && case "$1" in *.zip) unzip -q "./$1" -d "$2" ;; *) tar -xf "./$1" -C "$2" ;; esac',
        "sh",
        input.archive,
        path,
      ],
      timeoutMs: CLONE_TIMEOUT_MS,
      maxStdoutBytes: 0,
    });
    if (unpack.exit.exitCode !== 0) {
      await runInSandbox(connection, {
        argv: ["rm", "-rf", "--", path],
        timeoutMs: GIT_TIMEOUT_MS,
        maxStdoutBytes: 0,
      });
      throw new PolydevError(
        "command_failed",
        `could not unpack ${input.archive}: ${lastLines(unpack.stderr.text)}`,
      );
    }
    await makeRepository(connection, path);
  } else {
    // An existing folder stays where it is; projects/<name> points at it. A folder that is not
    // yet a repository becomes one, its files the first commit (the base of every run's diff).
    await makeRepository(connection, input.path);
    const depth = path.split("/").length - 1;
    await sandboxStep(
      connection,
      ["ln", "-s", "--", `${"../".repeat(depth)}${input.path}`, path],
      "could not link the project",
    );
  }
  if (input.check)
    await sandboxStep(
      connection,
      ["git", "-C", path, "config", CHECK_KEY, input.check],
      "could not store the check",
    );
  const listed = (await listProjects(connection)).find((p) => p.name === name);
  if (!listed) throw new PolydevError("command_failed", `project ${name} vanished right after it was added`);
  return listed;
}

const LIST_SCRIPT = `for d in ${PROJECTS_DIR}/*/; do
  [ -e "$d.git" ] || continue
  n=$(basename "$d")
  h=$(git -C "$d" rev-parse -q --verify HEAD 2>/dev/null)
  b=$(git -C "$d" symbolic-ref -q --short HEAD 2>/dev/null)
  u=$(git -C "$d" remote get-url origin 2>/dev/null)
  c=$(git -C "$d" config ${CHECK_KEY} 2>/dev/null)
  printf '%s\\0%s\\0%s\\0%s\\0%s\\0' "$n" "$h" "$b" "$u" "$c"
done`;

export async function listProjects(connection: AgentConnection): Promise<ProjectInfo[]> {
  const result = await runInSandbox(connection, {
    argv: ["/bin/sh", "-c", LIST_SCRIPT],
    timeoutMs: GIT_TIMEOUT_MS,
    maxStdoutBytes: MAX_LIST_BYTES,
  });
  const fields = result.stdout.text.split("\0");
  const projects: ProjectInfo[] = [];
  // A listing cut by the bound loses its last, partial entry.
  for (let i = 0; i + 5 <= fields.length - 1; i += 5) {
    const [name = "", head = "", branch = "", url = "", check = ""] = fields.slice(i, i + 5);
    projects.push({
      name,
      path: `${PROJECTS_DIR}/${name}`,
      url: url || null,
      head: head || null,
      branch: branch || null,
      check: check || null,
    });
  }
  return projects;
}

/** The commit a project folder (or a copy of one) is at; `not_a_project` when it holds no repository. */
export async function headCommit(connection: AgentConnection, folder: string): Promise<string> {
  const result = await runInSandbox(connection, {
    argv: ["git", "rev-parse", "-q", "--verify", "HEAD"],
    cwd: folder,
    timeoutMs: GIT_TIMEOUT_MS,
    maxStdoutBytes: 100,
  });
  const head = result.stdout.text.trim();
  if (result.exit.exitCode !== 0 || !/^[0-9a-f]{40,64}$/.test(head))
    throw new PolydevError(
      "not_a_project",
      `${folder} is not a git repository with a commit; add it with POST /v1/sandboxes/:id/projects`,
    );
  return head;
}

/** The project's default check (git config polydev.check), if it has one. */
export async function defaultCheck(connection: AgentConnection, folder: string): Promise<string | undefined> {
  const result = await runInSandbox(connection, {
    argv: ["git", "config", CHECK_KEY],
    cwd: folder,
    timeoutMs: GIT_TIMEOUT_MS,
    maxStdoutBytes: 64 * 1024,
  });
  const check = result.stdout.text.trim();
  return result.exit.exitCode === 0 && check ? check : undefined;
}

/**
 * The working copy against `baseCommit`, untracked files included, through a throw-away index
 * so the agent's own index is left as it was; then the check, run in that copy.
 */
export async function collectChanges(
  connection: AgentConnection,
  input: {
    runId: string;
    project: string;
    projectSandboxId: string;
    cwd: string;
    baseCommit: string;
    check: string | undefined;
    checkTimeoutMs: number;
    now: () => number;
  },
): Promise<RunChangesRecord> {
  const withIndex = (git: string) =>
    `i=$(mktemp) && trap 'rm -f "$i"' EXIT && export GIT_INDEX_FILE="$i" && git read-tree "$1" && git add -A && ${git}`;
  const names = await runInSandbox(connection, {
    argv: [
      "/bin/sh",
      "-c",
      withIndex('git diff --cached --no-renames --name-status -z "$1"'),
      "sh",
      input.baseCommit,
    ],
    cwd: input.cwd,
    timeoutMs: GIT_TIMEOUT_MS,
    maxStdoutBytes: MAX_CHANGED_FILES * 300,
  });
  if (names.exit.exitCode !== 0)
    throw new PolydevError(
      "command_failed",
      `git could not compare the working copy: ${lastLines(names.stderr.text)}`,
    );
  const parts = names.stdout.text.split("\0");
  const files: ChangedFile[] = [];
  for (let i = 0; i + 1 < parts.length && files.length < MAX_CHANGED_FILES; i += 2) {
    const status = parts[i] ?? "";
    const path = parts[i + 1] ?? "";
    if (status && path) files.push({ status, path });
  }
  const filesTruncated = names.stdout.truncated || parts.length - 1 > files.length * 2;
  const diff = await runInSandbox(connection, {
    argv: [
      "/bin/sh",
      "-c",
      withIndex('git diff --cached --no-color --no-ext-diff "$1"'),
      "sh",
      input.baseCommit,
    ],
    cwd: input.cwd,
    timeoutMs: GIT_TIMEOUT_MS,
    maxStdoutBytes: MAX_DIFF_BYTES,
  });
  let check: RunChangesRecord["check"] = null;
  if (input.check) {
    const ran = await runInSandbox(connection, {
      argv: ["/bin/sh", "-c", `exec 2>&1\n${input.check}`],
      cwd: input.cwd,
      timeoutMs: input.checkTimeoutMs,
      maxStdoutBytes: MAX_CHECK_OUTPUT_BYTES,
      keepStdoutTail: true,
    });
    check = {
      command: input.check,
      exitCode: ran.exit.exitCode,
      output:
        ran.stdout.text + (ran.exit.timedOut ? `\n[check stopped after ${input.checkTimeoutMs} ms]` : ""),
      outputTruncated: ran.stdout.truncated,
    };
  }
  return {
    runId: input.runId,
    project: input.project,
    projectSandboxId: input.projectSandboxId,
    baseCommit: input.baseCommit,
    files,
    filesTruncated,
    diff: diff.stdout.text,
    diffTruncated: diff.stdout.truncated,
    check,
    error: null,
    recordedAt: input.now(),
  };
}

/** A folder that holds no repository becomes one, its files the first commit (the base of every run's diff). */
async function makeRepository(connection: AgentConnection, folder: string): Promise<void> {
  const script = [
    'cd -- "$1" || exit 3',
    "git rev-parse --verify -q HEAD >/dev/null 2>&1 && exit 0",
    `git init -q . && git add -A && git ${GIT_IDENTITY.join(" ")} commit -q --allow-empty -m 'Initial commit (Polydev project)'`,
  ].join("\n");
  const init = await runInSandbox(connection, {
    argv: ["/bin/sh", "-c", script, "sh", folder],
    timeoutMs: CLONE_TIMEOUT_MS,
    maxStdoutBytes: 0,
  });
  if (init.exit.exitCode === 3)
    throw new PolydevError("not_found", `folder ${folder} does not exist in the sandbox`);
  if (init.exit.exitCode !== 0)
    throw new PolydevError(
      "command_failed",
      `could not make ${folder} a git repository: ${lastLines(init.stderr.text)}`,
    );
}

async function sandboxStep(connection: AgentConnection, argv: string[], what: string): Promise<void> {
  const result = await runInSandbox(connection, { argv, timeoutMs: GIT_TIMEOUT_MS, maxStdoutBytes: 0 });
  if (result.exit.exitCode !== 0)
    throw new PolydevError("command_failed", `${what}: ${lastLines(result.stderr.text)}`);
}

function lastSegment(path: string): string | null {
  return projectNameFromUrl(path);
}

function lastLines(text: string): string {
  return text.trim().split("\n").slice(-3).join(" / ") || "no output";
}
