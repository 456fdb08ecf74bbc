/** Errors are matched by their API code, never by message. */
import { PolydevApiError } from "@polydev/sdk";

export function errorCode(error: unknown): string | undefined {
  return error instanceof PolydevApiError ? error.code : undefined;
}

/** Worth asking again: the network or the server failed, not the request. */
export function isTransient(error: unknown): boolean {
  if (!(error instanceof PolydevApiError)) return true;
  return error.status === 0 || error.status >= 500;
}

export function isUnauthorized(error: unknown): boolean {
  return errorCode(error) === "unauthorized";
}

const HINTS: Record<string, string> = {
  unauthorized: "Your session has ended. Sign in again.",
  invalid_credentials: "Check the name and password, or sign in with an API key instead.",
  too_many_attempts: "Too many sign-in attempts. Wait a minute, then try again.",
  csrf_failed: "Reload the page and try again.",
  forbidden: "This needs an admin account.",
  not_found: "It may have been destroyed or never existed. Go back to the list.",
  sandbox_not_running: "The sandbox is not running. Resume it or create a new one.",
  limit_exceeded: "Destroy a sandbox you no longer need, or ask an admin for a higher limit.",
  invalid_request: "Check the values you entered and try again.",
  path_outside_home: "Paths must stay inside the home directory.",
  conflict: "Someone changed it at the same time. Refresh and try again.",
  pty_failed: "The shell did not start. Try again; if it keeps failing, check the sandbox's logs.",
  image_in_use: "Destroy the sandboxes made from this image first, then delete it.",
  credential_missing:
    "Add an API key (or sign in with a subscription) on the Credentials page, then start the run again.",
  feature_unavailable: "This server does not offer it: GET /healthz lists what its driver can do.",
  network_error: "Check that the Polydev server is running and reachable, then retry.",
};

/** What the API said, and what the user can do about it. */
export function describeError(error: unknown): { message: string; hint: string | undefined } {
  if (error instanceof PolydevApiError) {
    return { message: error.message, hint: HINTS[error.code] };
  }
  // fetch() rejects with a TypeError when the server cannot be reached at all.
  if (error instanceof TypeError) {
    return { message: "the server could not be reached", hint: HINTS.network_error };
  }
  if (error instanceof Error) return { message: error.message, hint: undefined };
  return { message: "something went wrong", hint: "Reload the page and try again." };
}
