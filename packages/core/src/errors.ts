/**
 * One error model end to end. Every failure a client can see is a PolydevError with a stable
 * `code`; the HTTP status comes from the code so the two cannot disagree.
 */
export const ERROR_STATUS = {
  invalid_request: 400,
  path_outside_home: 400,
  unauthorized: 401,
  invalid_credentials: 401,
  invalid_token: 401,
  /** A request claimed to come from another replica but its signature is missing or wrong. */
  invalid_internal_signature: 401,
  forbidden: 403,
  gateway_path_refused: 403,
  registry_refused: 403,
  destination_refused: 403,
  csrf_failed: 403,
  not_found: 404,
  method_not_allowed: 405,
  request_timeout: 408,
  conflict: 409,
  name_taken: 409,
  sandbox_not_running: 409,
  /** A follow-up was sent to a run (or a group's run) that has not finished its turn. */
  run_in_progress: 409,
  /** A run's conversation (its events or the built-in agent's history) is at its bound. */
  conversation_too_long: 409,
  process_not_running: 409,
  image_in_use: 409,
  /** A run's change can be kept only once the run has ended. */
  run_not_finished: 409,
  /** Keeping a run's change met conflicting changes in the project; details.paths names them. */
  merge_conflict: 409,
  /** The branch a keep would create exists with other content. */
  branch_exists: 409,
  /** The project folder has uncommitted changes a keep would mix with the run's. */
  project_dirty: 409,
  /** The sandbox a run worked in was destroyed or failed: its session cannot go on. */
  sandbox_gone: 410,
  payload_too_large: 413,
  unsupported_media_type: 415,
  expectation_failed: 417,
  upgrade_required: 426,
  limit_exceeded: 429,
  too_many_attempts: 429,
  /** A user holds as many event streams as allowed. */
  too_many_streams: 429,
  /** A plan's limit (details.limit names it) would be exceeded. */
  quota_exceeded: 429,
  /** An API key sent requests faster than its token bucket refills. */
  rate_limited: 429,
  headers_too_large: 431,
  command_failed: 422,
  clone_failed: 422,
  /** The run recorded no change to keep (no project, an empty or cut-short diff). */
  nothing_to_keep: 422,
  push_failed: 422,
  not_a_project: 400,
  project_required: 400,
  feature_unavailable: 422,
  credential_unreadable: 422,
  credential_missing: 422,
  driver_unavailable: 503,
  /** The node that hosts the sandbox is not answering (it is marked failed soon). */
  node_unavailable: 503,
  /** Replicas share a database but no POLYDEV_CLUSTER_SECRET is set, so nothing can be forwarded. */
  cluster_secret_missing: 503,
  sandbox_failed: 502,
  port_unreachable: 502,
  upstream_unreachable: 502,
  timeout: 504,
  internal: 500,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

export interface PolydevErrorOptions {
  details?: Record<string, unknown>;
  cause?: unknown;
}

export class PolydevError extends Error {
  override readonly name = "PolydevError";
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, options: PolydevErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.status = ERROR_STATUS[code];
    this.details = options.details;
  }

  toJSON(): { error: { code: ErrorCode; message: string; details?: Record<string, unknown> } } {
    return {
      error: {
        code: this.code,
        message: this.message,
        ...(this.details === undefined ? {} : { details: this.details }),
      },
    };
  }
}

export function isPolydevError(value: unknown): value is PolydevError {
  return value instanceof PolydevError;
}

export const notFound = (what: string, id: string): PolydevError =>
  new PolydevError("not_found", `${what} ${id} does not exist`);
