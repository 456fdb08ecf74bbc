import { describeError, errorCode } from "../queries/errors";
import { Link } from "../router";

/** The API's own message, and what to do about it. */
export function ErrorNotice({
  error,
  title,
  onRetry,
}: {
  error: unknown;
  title?: string;
  onRetry?: () => void;
}) {
  const { message, hint } = describeError(error);
  return (
    <div className="notice notice-error" role="alert">
      <strong>{title ?? "That did not work"}:</strong> {message}
      {hint ? <p className="notice-hint">{hint}</p> : null}
      {errorCode(error) === "credential_missing" ? (
        <Link href="/credentials" className="button button-small">
          Add a credential
        </Link>
      ) : null}
      {onRetry ? (
        <button type="button" className="button button-small" onClick={onRetry}>
          Try again
        </button>
      ) : null}
    </div>
  );
}
