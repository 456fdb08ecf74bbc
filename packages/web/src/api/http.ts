/**
 * The few calls the SDK has no method for (mkdir, delete, validate, and an upload that reports
 * progress), made the way the SDK's browser mode makes them: the HttpOnly
 * cookie goes by itself (same origin), unsafe methods carry the session's CSRF token, and errors
 * become the SDK's error classes, so pages match on `code` either way.
 */
import { errorFromResponse, PolydevApiError } from "@polydev/sdk";

let csrfToken: string | undefined;

/** Remembered from `GET/POST /v1/auth/session`; cleared on sign-out. */
export function setCsrfToken(token: string | undefined): void {
  csrfToken = token;
}

export function currentCsrfToken(): string | undefined {
  return csrfToken;
}

export type Query = Record<string, string | number | boolean | undefined>;

export interface RequestOptions {
  query?: Query;
  body?: unknown;
  signal?: AbortSignal;
}

export function apiUrl(path: string, query: Query = {}): string {
  const url = new URL(path, window.location.origin);
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined) url.searchParams.set(key, String(value));
  }
  return url.toString();
}

function headersFor(method: string, json: boolean): Headers {
  const headers = new Headers();
  if (json) headers.set("content-type", "application/json");
  if (method !== "GET" && method !== "HEAD" && csrfToken) headers.set("x-csrf-token", csrfToken);
  return headers;
}

export function networkError(cause: unknown): PolydevApiError {
  const error = new PolydevApiError(
    "network_error",
    0,
    "the server could not be reached",
    cause instanceof Error ? { reason: cause.message } : undefined,
  );
  return error;
}

async function send(method: string, path: string, options: RequestOptions): Promise<Response> {
  const json = options.body !== undefined;
  let response: Response;
  try {
    response = await fetch(apiUrl(path, options.query), {
      method,
      headers: headersFor(method, json),
      credentials: "same-origin",
      ...(json ? { body: JSON.stringify(options.body) } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
  } catch (error) {
    if (options.signal?.aborted) throw error;
    throw networkError(error);
  }
  if (!response.ok) throw errorFromResponse(response.status, await response.json().catch(() => undefined));
  return response;
}

/** A JSON answer. */
export async function requestJson<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
  const response = await send(method, path, options);
  return (await response.json()) as T;
}

/** An answer whose body does not matter (204s, `{ ok: true }`). */
export async function requestNothing(
  method: string,
  path: string,
  options: RequestOptions = {},
): Promise<void> {
  const response = await send(method, path, options);
  await response.body?.cancel();
}

/**
 * Uploads a raw body with progress. fetch() cannot report upload progress, so this one call uses
 * XMLHttpRequest.
 */
export function uploadWithProgress<T>(
  path: string,
  query: Query,
  body: Blob,
  onProgress: (sentBytes: number, totalBytes: number) => void,
  signal?: AbortSignal,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", apiUrl(path, query));
    xhr.withCredentials = true;
    xhr.setRequestHeader("content-type", "application/octet-stream");
    if (csrfToken) xhr.setRequestHeader("x-csrf-token", csrfToken);
    xhr.upload.onprogress = (event) =>
      onProgress(event.loaded, event.lengthComputable ? event.total : body.size);
    xhr.onload = () => {
      let parsed: unknown;
      try {
        parsed = JSON.parse(xhr.responseText);
      } catch {
        parsed = undefined;
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve(parsed as T);
      else reject(errorFromResponse(xhr.status, parsed));
    };
    xhr.onerror = () => reject(networkError(new Error("upload failed")));
    xhr.onabort = () => reject(new DOMException("upload cancelled", "AbortError"));
    signal?.addEventListener("abort", () => xhr.abort(), { once: true });
    xhr.send(body);
  });
}
