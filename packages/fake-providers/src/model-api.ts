import type { SseWriter } from "./http-io.js";
import type { IdSource } from "./ids.js";
import type { PlannedError, PlannedReply } from "./plan.js";
import type { FakeProviderName, FakeRequestView } from "./types.js";

/** What an adapter reads from a request body; the server adds the provider and the record. */
export type RequestFacts = Omit<FakeRequestView, "provider" | "request">;

export interface ReplyContext {
  model: string;
  ids: IdSource;
  /** The request body, for options that change the reply's shape (e.g. `stream_options`). */
  body: unknown;
}

/** What the URL says about a request: Gemini puts the model and streaming in the path. */
export interface RouteFacts {
  model?: string;
  stream?: boolean;
}

/** One provider wire format: how to read a model request and how to write each kind of answer. */
export interface ModelApi {
  provider: FakeProviderName;
  read(body: unknown, route: RouteFacts): RequestFacts;
  stream(sse: SseWriter, reply: PlannedReply, context: ReplyContext): Promise<void>;
  complete(reply: PlannedReply, context: ReplyContext): unknown;
  errorBody(error: PlannedError): unknown;
  /** Extra response headers the real API sends and clients may read. */
  headers?: (context: ReplyContext) => Record<string, string>;
}
