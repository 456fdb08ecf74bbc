/**
 * Keeping a run's change (`POST /v1/runs/:id/keep`): a commit on a branch in the project the run
 * came from, then a fast-forward or merge, optionally pushed. The dashboard calls it here rather
 * than through the SDK so the page does not wait on the SDK's method; the errors are the SDK's
 * classes either way (a conflict is `merge_conflict` with `details.paths`).
 */
import { PolydevApiError } from "@polydev/sdk";
import { requestJson } from "./http";

export interface KeepRequest {
  /** Push the branch to the project's remote, from inside the sandbox. Default false. */
  push?: boolean;
}

/** How a run's change was kept, as the server records it. */
export interface RunKeep {
  branch: string;
  commit: string;
  merged: boolean;
  pushed: boolean;
  pullRequestUrl: string | null;
  keptAt: string;
  /** Runs of the same group kept before this one (keeping a second one is allowed, and reported). */
  otherKeptRuns?: string[];
}

export function keepRun(id: string, body: KeepRequest, signal?: AbortSignal): Promise<RunKeep> {
  return requestJson<RunKeep>("POST", `/v1/runs/${encodeURIComponent(id)}/keep`, {
    body,
    ...(signal ? { signal } : {}),
  });
}

function isRunKeep(value: unknown): value is RunKeep {
  return (
    typeof value === "object" &&
    value !== null &&
    "branch" in value &&
    typeof value.branch === "string" &&
    "commit" in value &&
    typeof value.commit === "string" &&
    "merged" in value &&
    typeof value.merged === "boolean" &&
    "pushed" in value &&
    typeof value.pushed === "boolean" &&
    "keptAt" in value &&
    typeof value.keptAt === "string"
  );
}

/**
 * The keep a run's changes carry (`keep` in `GET /v1/runs/:id/changes`) once it was kept; null
 * before, or from a server that does not record keeps.
 */
export function keptOf(changes: object): RunKeep | null {
  return "keep" in changes && isRunKeep(changes.keep) ? changes.keep : null;
}

/** The files a refused keep conflicted on (409 `merge_conflict`), else undefined. */
export function conflictPaths(error: unknown): string[] | undefined {
  if (!(error instanceof PolydevApiError) || error.code !== "merge_conflict") return undefined;
  const paths = error.details?.paths;
  return Array.isArray(paths) ? paths.filter((p): p is string => typeof p === "string") : [];
}
