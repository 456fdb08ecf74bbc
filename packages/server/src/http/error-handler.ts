/**
 * The one place errors become HTTP answers: `{ error: { code, message, details? } }`.
 * Anything that is not a PolydevError is logged and answered as `internal` without its message,
 * so nothing from a stack (paths, secrets) reaches a client.
 */
import { isPolydevError, PolydevError } from "@polydev/core";
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { hasZodFastifySchemaValidationErrors } from "fastify-type-provider-zod";

function fromFastifyError(error: FastifyError): PolydevError | undefined {
  switch (error.code) {
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return new PolydevError(
        "payload_too_large",
        "request body is too large; stream big files with PUT …/files/content",
      );
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
      return new PolydevError("unsupported_media_type", "send JSON with Content-Type: application/json");
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
      return new PolydevError("invalid_request", "the JSON body is empty; send an object");
    case "FST_ERR_CTP_INVALID_JSON_BODY":
      return new PolydevError("invalid_request", "the body is not valid JSON");
    // A stream from a sandbox is cut short only when its agent connection ends under it: the
    // sandbox was destroyed or stopped, or its init died.
    case "ERR_STREAM_PREMATURE_CLOSE":
      return new PolydevError("sandbox_not_running", "the sandbox stopped while its output was being read");
    default:
      break;
  }
  if (error instanceof SyntaxError || error.code === "FST_ERR_CTP_INVALID_CONTENT_LENGTH") {
    return new PolydevError("invalid_request", "the body is not valid JSON");
  }
  if (error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500) {
    return new PolydevError("invalid_request", error.message);
  }
  return undefined;
}

export function toPolydevError(error: unknown): PolydevError | undefined {
  if (isPolydevError(error)) return error;
  if (typeof error === "object" && error !== null && hasZodFastifySchemaValidationErrors(error)) {
    const issues = error.validation.map((v) => {
      const where = `${error.validationContext ?? "body"}${v.instancePath.replaceAll("/", ".")}`;
      return { path: where, message: v.message ?? "is invalid" };
    });
    const summary = issues.map((i) => `${i.path}: ${i.message}`).join("; ");
    return new PolydevError("invalid_request", `invalid request: ${summary}`, { details: { issues } });
  }
  if (error instanceof Error && "code" in error) return fromFastifyError(error as FastifyError);
  return undefined;
}

const JSON_TYPE = "application/json; charset=utf-8";

export function registerErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((error: unknown, request: FastifyRequest, reply: FastifyReply) => {
    const known = toPolydevError(error);
    if (known) {
      if (known.status >= 500) request.log.error({ err: error }, known.message);
      // A refusal that knows when to come back says so the standard way (RFC 9110 §10.2.3).
      const retryAfterMs = known.details?.retryAfterMs;
      if (known.status === 429 && typeof retryAfterMs === "number" && retryAfterMs > 0)
        reply.header("retry-after", String(Math.ceil(retryAfterMs / 1000)));
      // A route may have set another type (a raw stream that failed before its first byte).
      return reply.status(known.status).type(JSON_TYPE).send(known.toJSON());
    }
    request.log.error({ err: error }, "unhandled error");
    const internal = new PolydevError("internal", "internal error; the server log has the details");
    return reply.status(500).type(JSON_TYPE).send(internal.toJSON());
  });
  app.setNotFoundHandler((request, reply) => {
    const error = new PolydevError("not_found", `no route ${request.method} ${request.url.split("?")[0]}`);
    return reply.status(404).send(error.toJSON());
  });
}
