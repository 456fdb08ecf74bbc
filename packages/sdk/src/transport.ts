/** What the SDK's resource helpers need from `Polydev`: the typed client and raw streaming calls. */
import type createClient from "openapi-fetch";
import type { paths } from "./api-types.js";
import { errorFromResponse } from "./errors.js";

export interface ApiTransport {
  api(): ReturnType<typeof createClient<paths>>;
  /** A request whose answer is read as a stream; a non-2xx answer throws its error class. */
  raw(path: string, init: RequestInit): Promise<Response>;
}

interface Answer<T> {
  data?: T;
  error?: unknown;
  response: Response;
}

/** The answer's body, or the error class of its code. */
export function unwrap<T>(answer: Answer<T>): T {
  if (answer.error !== undefined || !answer.response.ok)
    throw errorFromResponse(answer.response.status, answer.error);
  return answer.data as T;
}
