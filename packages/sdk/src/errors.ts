/** The one place API error codes become error classes; callers match on classes or `code`. */

export interface ErrorBody {
  error?: { code?: string; message?: string; details?: Record<string, unknown> };
}

export class PolydevApiError extends Error {
  override name = "PolydevApiError";
  constructor(
    readonly code: string,
    readonly status: number,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

export class InvalidRequestError extends PolydevApiError {
  override name = "InvalidRequestError";
}
export class UnauthorizedError extends PolydevApiError {
  override name = "UnauthorizedError";
}
export class ForbiddenError extends PolydevApiError {
  override name = "ForbiddenError";
}
export class NotFoundError extends PolydevApiError {
  override name = "NotFoundError";
}
export class ConflictError extends PolydevApiError {
  override name = "ConflictError";
}
/** A follow-up to a run (or group) still working (409 `run_in_progress`); a conflict too. */
export class RunInProgressError extends ConflictError {
  override name = "RunInProgressError";
}
/** The sandbox a run worked in was destroyed or failed (410 `sandbox_gone`): start a new run. */
export class SandboxGoneError extends PolydevApiError {
  override name = "SandboxGoneError";
}
/** A name the user already holds (409 `name_taken`); a conflict, so `ConflictError` catches it too. */
export class NameTakenError extends ConflictError {
  override name = "NameTakenError";
}
/** The server's sandbox driver lacks what the call needs (e.g. "durable", "fork"): `details.feature`. */
export class FeatureUnavailableError extends PolydevApiError {
  override name = "FeatureUnavailableError";
}
export class SandboxNotRunningError extends PolydevApiError {
  override name = "SandboxNotRunningError";
}
export class PathOutsideHomeError extends PolydevApiError {
  override name = "PathOutsideHomeError";
}
export class LimitExceededError extends PolydevApiError {
  override name = "LimitExceededError";
}

/**
 * The agent's provider has no stored credential: `details.providers` names the one(s) it can use,
 * `details.addWith` the call that adds one.
 */
export class CredentialMissingError extends PolydevApiError {
  override name = "CredentialMissingError";
  get providers(): string[] {
    const value = this.details?.providers;
    return Array.isArray(value) ? value.filter((p): p is string => typeof p === "string") : [];
  }
}

export class InvalidCredentialsError extends PolydevApiError {
  override name = "InvalidCredentialsError";
}
/** A JWT of an external issuer was refused (expired, wrong audience, unknown issuer…). */
export class InvalidTokenError extends UnauthorizedError {}

export class CsrfFailedError extends PolydevApiError {
  override name = "CsrfFailedError";
}
/** `retryAfterMs` says when to try again. */
/** A plan's limit was reached; `limit` names which (e.g. "runningSandboxes"). */
export class QuotaExceededError extends PolydevApiError {
  override name = "QuotaExceededError";
  get limit(): string | undefined {
    const value = this.details?.limit;
    return typeof value === "string" ? value : undefined;
  }
}

export class TooManyAttemptsError extends PolydevApiError {
  override name = "TooManyAttemptsError";
  get retryAfterMs(): number | undefined {
    const value = this.details?.retryAfterMs;
    return typeof value === "number" ? value : undefined;
  }
}

const CLASSES: Record<string, typeof PolydevApiError> = {
  invalid_request: InvalidRequestError,
  unauthorized: UnauthorizedError,
  forbidden: ForbiddenError,
  not_found: NotFoundError,
  conflict: ConflictError,
  name_taken: NameTakenError,
  feature_unavailable: FeatureUnavailableError,
  image_in_use: ConflictError,
  run_in_progress: RunInProgressError,
  conversation_too_long: ConflictError,
  sandbox_gone: SandboxGoneError,
  sandbox_not_running: SandboxNotRunningError,
  path_outside_home: PathOutsideHomeError,
  limit_exceeded: LimitExceededError,
  credential_missing: CredentialMissingError,
  invalid_credentials: InvalidCredentialsError,
  csrf_failed: CsrfFailedError,
  invalid_token: InvalidTokenError,
  too_many_attempts: TooManyAttemptsError,
  quota_exceeded: QuotaExceededError,
  rate_limited: TooManyAttemptsError,
  too_many_streams: LimitExceededError,
};

export function errorFromResponse(status: number, body: unknown): PolydevApiError {
  const error = (typeof body === "object" && body !== null ? (body as ErrorBody).error : undefined) ?? {};
  const code = error.code ?? `http_${status}`;
  const ErrorClass = CLASSES[code] ?? PolydevApiError;
  return new ErrorClass(code, status, error.message ?? `the server answered ${status}`, error.details);
}
