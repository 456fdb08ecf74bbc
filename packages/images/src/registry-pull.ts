import { createHash } from "node:crypto";
import { Readable, Transform, type TransformCallback } from "node:stream";
import type { ReadableStream as WebReadableStream } from "node:stream/web";
import { PolydevError } from "@polydev/core";
import { type Dispatcher, fetch, type Response } from "undici";
import type { BlobStore } from "./blob-store.js";
import {
  checkLayerMediaType,
  DEFAULT_MAX_JSON_BYTES,
  DEFAULT_MAX_LAYERS,
  type Descriptor,
  type ImageLayer,
  type ImportedImage,
  INDEX_TYPES,
  indexSchema,
  MANIFEST_TYPES,
  MAX_INDEX_DEPTH,
  MEDIA_TYPES,
  manifestSchema,
  parseJson,
  pickPlatformManifest,
  readConfig,
} from "./image-import.js";
import { registryDispatcher } from "./registry-connect.js";
import {
  DOCKER_HUB,
  DOCKER_HUB_API_HOST,
  type ImageReference,
  parseImageReference,
} from "./registry-reference.js";

export interface PullOptions {
  /** Most bytes of manifests, config and layers in total (as sent, compressed layers compressed). */
  maxBytes: number;
  /** Most layers; default 127. */
  maxLayers?: number;
  /** Largest manifest, index, config or token JSON; default 4 MiB. */
  maxJsonBytes?: number;
  signal?: AbortSignal;
  /**
   * `host:port` of registries spoken to over plain http (e.g. a loopback test registry); https
   * otherwise. Listing a host also lets it be on a private or loopback address (see privateHosts).
   */
  insecureHosts?: readonly string[];
  /**
   * `host` or `host:port` names a pull may connect to although they resolve to loopback, private,
   * link-local or this host's own addresses (a registry on the LAN). Every other connection,
   * redirects and token realms included, is refused there with `registry_refused`
   * (registry-connect.ts): the reference is the user's, so unchecked it is request forgery.
   */
  privateHosts?: readonly string[];
  credentials?: { username: string; password: string };
  /** Longest wait for a response's headers, and for the next chunk of a body; default 30 s. */
  timeoutMs?: number;
  /** Most redirects followed for one request; default 5. */
  maxRedirects?: number;
}

const ACCEPT = [
  MEDIA_TYPES.ociManifest,
  MEDIA_TYPES.ociIndex,
  MEDIA_TYPES.dockerManifest,
  MEDIA_TYPES.dockerList,
].join(", ");
const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_REDIRECTS = 5;
const MAX_ERROR_BODY_BYTES = 4096;

/**
 * Pulls `reference` (Docker's syntax) for linux/amd64 from a registry speaking the OCI distribution
 * API into `store`: manifest (following an index), config and layers, every blob verified against its
 * digest and declared size while it streams into the store. Answers the same shape as
 * `importImageArchive`, with `format: "registry"`.
 *
 * A malformed reference, manifest or config, a digest or size mismatch is `invalid_request`; a limit
 * is `payload_too_large` (refused from the declared sizes before a byte is fetched where possible); a
 * missing image is `not_found`; refused credentials are `forbidden`; a registry that cannot be
 * reached, answers an unexpected status, redirects too often or stalls past `timeoutMs` is
 * `upstream_unreachable`; a host on a private, loopback or link-local address that is not listed
 * in `privateHosts` or `insecureHosts` is `registry_refused`, before any byte is sent. Credentials are only ever sent to the registry's own origin and its token
 * realm, and never appear in an error. Blobs stored before a refusal stay in the store (verified,
 * unreferenced), as with `importImageArchive`.
 */
export async function pullImage(
  reference: string,
  store: BlobStore,
  options: PullOptions,
): Promise<ImportedImage> {
  options.signal?.throwIfAborted();
  const ref = parseImageReference(reference);
  await store.init();
  const session = new RegistrySession(ref, options);
  const maxJsonBytes = options.maxJsonBytes ?? DEFAULT_MAX_JSON_BYTES;
  const maxLayers = options.maxLayers ?? DEFAULT_MAX_LAYERS;
  const budget = { remaining: options.maxBytes };

  let fetched = await session.fetchManifest(ref.reference, ref.digest, maxJsonBytes);
  for (let depth = 0; INDEX_TYPES.has(fetched.mediaType); depth += 1) {
    if (depth >= MAX_INDEX_DEPTH) {
      throw new PolydevError("invalid_request", `image indexes are nested more than ${MAX_INDEX_DEPTH} deep`);
    }
    const index = parseJson(fetched.body, indexSchema, `index ${fetched.digest}`);
    const chosen = pickPlatformManifest(index.manifests);
    if (chosen.size > maxJsonBytes) throw jsonTooLarge(chosen.digest, maxJsonBytes);
    fetched = await session.fetchManifest(chosen.digest, chosen.digest, maxJsonBytes, chosen.size);
  }
  const manifest = parseJson(fetched.body, manifestSchema(maxLayers), `manifest ${fetched.digest}`);
  if (manifest.mediaType !== undefined && manifest.mediaType !== fetched.mediaType) {
    throw new PolydevError(
      "invalid_request",
      `manifest ${fetched.digest} says it is ${manifest.mediaType}, the registry ${fetched.mediaType}`,
    );
  }
  const layers: ImageLayer[] = manifest.layers.map((layer) => {
    checkLayerMediaType(layer.mediaType, layer.digest);
    return { digest: layer.digest, mediaType: layer.mediaType, size: layer.size };
  });
  if (manifest.config.size > maxJsonBytes) throw jsonTooLarge(manifest.config.digest, maxJsonBytes);
  const declared = [manifest.config, ...layers].reduce((sum, blob) => sum + blob.size, fetched.body.length);
  if (declared > options.maxBytes) {
    throw new PolydevError(
      "payload_too_large",
      `the image is ${declared} bytes, more than the ${options.maxBytes} allowed`,
      { details: { maxBytes: options.maxBytes, size: declared } },
    );
  }
  budget.remaining -= fetched.body.length;

  await session.fetchBlob(manifest.config, store, budget);
  const config = await readConfig(
    await store.read(manifest.config.digest, maxJsonBytes),
    manifest.config.digest,
    layers,
  );
  for (const layer of manifest.layers) await session.fetchBlob(layer, store, budget);
  const stored = await store.put(Readable.from([fetched.body]), {
    maxBytes: fetched.body.length,
    expectedDigest: fetched.digest,
  });
  return {
    format: "registry",
    manifestDigest: stored.digest,
    configDigest: manifest.config.digest,
    config,
    layers,
  };
}

function jsonTooLarge(digest: string, maxJsonBytes: number): PolydevError {
  return new PolydevError("payload_too_large", `${digest} is larger than ${maxJsonBytes} bytes`, {
    details: { digest, maxJsonBytes },
  });
}

interface FetchedManifest {
  body: Buffer;
  digest: string;
  mediaType: string;
}

interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

class RegistrySession {
  private readonly origin: string;
  private readonly name: string;
  private authorization: string | undefined;
  private readonly timeoutMs: number;
  private readonly maxRedirects: number;
  private readonly dispatcher: Dispatcher;

  constructor(
    private readonly ref: ImageReference,
    private readonly options: PullOptions,
  ) {
    const host = ref.registry === DOCKER_HUB ? DOCKER_HUB_API_HOST : ref.registry;
    const insecure = options.insecureHosts?.includes(ref.registry) ?? false;
    this.origin = `${insecure ? "http" : "https"}://${host}`;
    this.name = `${ref.registry}/${ref.repository}`;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.maxRedirects = options.maxRedirects ?? DEFAULT_MAX_REDIRECTS;
    this.dispatcher = registryDispatcher([...(options.insecureHosts ?? []), ...(options.privateHosts ?? [])]);
  }

  async fetchManifest(
    reference: string,
    expectedDigest: string | undefined,
    maxJsonBytes: number,
    expectedSize?: number,
  ): Promise<FetchedManifest> {
    const what = `manifest ${this.name}:${reference}`;
    const response = await this.request(`/v2/${this.ref.repository}/manifests/${reference}`, ACCEPT, what);
    const body = await this.readBody(response, maxJsonBytes, what);
    const digest = `sha256:${createHash("sha256").update(body).digest("hex")}`;
    if (expectedDigest !== undefined && digest !== expectedDigest) {
      throw new PolydevError("invalid_request", `the registry sent ${digest} for ${what}`, {
        details: { expected: expectedDigest, actual: digest },
      });
    }
    const header = response.headers.get("docker-content-digest");
    if (header?.startsWith("sha256:") && header !== digest) {
      throw new PolydevError(
        "invalid_request",
        `${what} hashes to ${digest}, the registry says ${header.slice(0, 80)}`,
      );
    }
    if (expectedSize !== undefined && body.length !== expectedSize) {
      throw new PolydevError(
        "invalid_request",
        `${what} is ${body.length} bytes, its descriptor says ${expectedSize}`,
      );
    }
    let declared: unknown;
    try {
      declared = (JSON.parse(body.toString("utf8")) as { mediaType?: unknown })?.mediaType;
    } catch (error) {
      throw new PolydevError("invalid_request", `${what} is not JSON`, { cause: error });
    }
    const contentType = (response.headers.get("content-type") ?? "").split(";")[0]?.trim() ?? "";
    const mediaType = typeof declared === "string" ? declared : contentType;
    if (!INDEX_TYPES.has(mediaType) && !MANIFEST_TYPES.has(mediaType)) {
      throw new PolydevError(
        "unsupported_media_type",
        `${what} is of the unsupported type ${JSON.stringify(mediaType.slice(0, 120))}`,
      );
    }
    return { body, digest, mediaType };
  }

  async fetchBlob(descriptor: Descriptor, store: BlobStore, budget: { remaining: number }): Promise<void> {
    const what = `blob ${descriptor.digest} of ${this.name}`;
    if (descriptor.size > budget.remaining) {
      throw new PolydevError("payload_too_large", `${what} would take the image past its size limit`, {
        details: { digest: descriptor.digest },
      });
    }
    const response = await this.request(`/v2/${this.ref.repository}/blobs/${descriptor.digest}`, "*/*", what);
    const length = contentLength(response);
    if (length !== null && length !== descriptor.size) {
      await cancel(response);
      throw new PolydevError(
        "invalid_request",
        `the registry sends ${length} bytes for ${what}, its descriptor says ${descriptor.size}`,
      );
    }
    const source = this.bodyStream(response, what);
    try {
      await store.put(source, {
        // One byte more than declared, so that a longer body is told apart from a limit.
        maxBytes: descriptor.size + 1,
        expectedDigest: descriptor.digest,
        expectedSize: descriptor.size,
        signal: this.options.signal,
      });
    } catch (error) {
      if (error instanceof PolydevError && error.code === "payload_too_large") {
        throw new PolydevError(
          "invalid_request",
          `the registry sent more than the ${descriptor.size} bytes declared for ${what}`,
        );
      }
      throw error;
    } finally {
      source.destroy();
    }
    budget.remaining -= descriptor.size;
  }

  /** GET `path` of the registry: authenticates on a 401 challenge (once) and follows bounded redirects. */
  private async request(path: string, accept: string, what: string): Promise<Response> {
    for (let attempt = 0; ; attempt += 1) {
      const response = await this.follow(`${this.origin}${path}`, { accept }, what, this.authorization);
      if (response.status === 401 && attempt === 0) {
        const challenge = parseChallenge(response.headers.get("www-authenticate"));
        await cancel(response);
        await this.authenticate(challenge, what);
        continue;
      }
      if (response.ok) return response;
      const detail = await errorDetail(response);
      if (response.status === 404) {
        throw new PolydevError("not_found", `the registry has no ${what}${detail}`, {
          details: { reference: `${this.name}:${this.ref.reference}` },
        });
      }
      if (response.status === 401 || response.status === 403) {
        throw new PolydevError(
          "forbidden",
          `the registry refused access to ${what} (HTTP ${response.status})${detail}${this.options.credentials ? ": check the credentials" : ": it may need credentials"}`,
        );
      }
      if (response.status === 429) {
        throw new PolydevError(
          "upstream_unreachable",
          `the registry is rate-limiting pulls (HTTP 429) of ${what}`,
        );
      }
      throw new PolydevError(
        "upstream_unreachable",
        `the registry answered HTTP ${response.status} for ${what}${detail}`,
      );
    }
  }

  private async authenticate(challenge: Challenge | null, what: string): Promise<void> {
    const credentials = this.options.credentials;
    if (challenge?.scheme === "basic") {
      if (credentials === undefined) {
        throw new PolydevError("forbidden", `the registry needs credentials for ${what}`);
      }
      this.authorization = `Basic ${basic(credentials)}`;
      return;
    }
    if (challenge?.scheme !== "bearer" || challenge.params.realm === undefined) {
      throw new PolydevError(
        "upstream_unreachable",
        `the registry answered 401 for ${what} without a usable challenge`,
      );
    }
    let realm: URL;
    try {
      realm = new URL(challenge.params.realm);
    } catch {
      throw new PolydevError("upstream_unreachable", "the registry's token realm is not a URL");
    }
    if (realm.protocol !== "https:" && !(realm.protocol === "http:" && this.isInsecure(realm.host))) {
      throw new PolydevError(
        "upstream_unreachable",
        `the registry's token realm ${realm.origin} is not https (nor an insecure host allowed)`,
      );
    }
    if (challenge.params.service !== undefined) realm.searchParams.set("service", challenge.params.service);
    realm.searchParams.set("scope", challenge.params.scope ?? `repository:${this.ref.repository}:pull`);
    const response = await this.follow(
      realm.href,
      { accept: "application/json" },
      "a registry token",
      credentials === undefined ? undefined : `Basic ${basic(credentials)}`,
    );
    if (!response.ok) {
      const detail = await errorDetail(response);
      throw new PolydevError(
        response.status === 401 || response.status === 403 ? "forbidden" : "upstream_unreachable",
        `the registry's token service answered HTTP ${response.status}${detail}`,
      );
    }
    const body = await this.readBody(
      response,
      this.options.maxJsonBytes ?? DEFAULT_MAX_JSON_BYTES,
      "the registry token",
    );
    let token: unknown;
    try {
      const parsed = JSON.parse(body.toString("utf8")) as { token?: unknown; access_token?: unknown };
      token = parsed.token ?? parsed.access_token;
    } catch {
      token = undefined;
    }
    if (typeof token !== "string" || token.length === 0 || !/^[\x21-\x7e]+$/.test(token)) {
      throw new PolydevError("upstream_unreachable", "the registry's token service answered no usable token");
    }
    this.authorization = `Bearer ${token}`;
  }

  private isInsecure(host: string): boolean {
    return this.options.insecureHosts?.includes(host) ?? false;
  }

  /**
   * One GET following at most `maxRedirects` redirects to http(s) URLs. `authorization` goes only to
   * the origin of `start`, never to where a redirect leads elsewhere.
   */
  private async follow(
    start: string,
    baseHeaders: Record<string, string>,
    what: string,
    authorization: string | undefined,
  ): Promise<Response> {
    let url = new URL(start);
    const authOrigin = url.origin;
    for (let hop = 0; ; hop += 1) {
      const headers: Record<string, string> = { ...baseHeaders };
      if (authorization !== undefined && url.origin === authOrigin) headers.authorization = authorization;
      const response = await this.fetchWithTimeout(url, headers, what);
      if (![301, 302, 303, 307, 308].includes(response.status)) return response;
      await cancel(response);
      if (hop >= this.maxRedirects) {
        throw new PolydevError(
          "upstream_unreachable",
          `the registry redirected ${what} more than ${this.maxRedirects} times`,
        );
      }
      const location = response.headers.get("location");
      let next: URL;
      try {
        next = new URL(location ?? "", url);
      } catch {
        throw new PolydevError(
          "upstream_unreachable",
          `the registry redirected ${what} to an invalid location`,
        );
      }
      if (location === null || (next.protocol !== "https:" && next.protocol !== "http:")) {
        throw new PolydevError(
          "upstream_unreachable",
          `the registry redirected ${what} to a ${location === null ? "missing" : next.protocol} location; only http(s) is followed`,
        );
      }
      if (next.username !== "" || next.password !== "") {
        throw new PolydevError(
          "upstream_unreachable",
          `the registry redirected ${what} to a URL with credentials`,
        );
      }
      url = next;
    }
  }

  private async fetchWithTimeout(url: URL, headers: Record<string, string>, what: string): Promise<Response> {
    this.options.signal?.throwIfAborted();
    const controller = new AbortController();
    const onAbort = (): void => controller.abort(this.options.signal?.reason);
    this.options.signal?.addEventListener("abort", onAbort, { once: true });
    const timer = setTimeout(() => controller.abort(new TimeoutMarker()), this.timeoutMs);
    try {
      const response = await fetch(url, {
        headers,
        redirect: "manual",
        signal: controller.signal,
        dispatcher: this.dispatcher,
      });
      // The body has its own idle timeout (bodyStream / readBody); keep the controller for it.
      responseControllers.set(response, controller);
      return response;
    } catch (error) {
      throw this.transportError(error, what, url);
    } finally {
      clearTimeout(timer);
      this.options.signal?.removeEventListener("abort", onAbort);
    }
  }

  private transportError(error: unknown, what: string, url: URL): unknown {
    if (this.options.signal?.aborted) return this.options.signal.reason;
    if (error instanceof PolydevError) return error;
    // fetch wraps what the connector refused (registry-connect.ts) as the cause of its TypeError.
    const refused = (error as { cause?: unknown })?.cause;
    if (refused instanceof PolydevError) return refused;
    if (error instanceof TimeoutMarker || (error as { cause?: unknown })?.cause instanceof TimeoutMarker) {
      return new PolydevError(
        "upstream_unreachable",
        `${url.host} did not answer within ${this.timeoutMs} ms (${what})`,
      );
    }
    const cause = (error as { cause?: { code?: unknown; message?: unknown } })?.cause;
    const reason =
      typeof cause?.code === "string" ? cause.code : error instanceof Error ? error.message : "error";
    return new PolydevError("upstream_unreachable", `cannot reach ${url.host} for ${what}: ${reason}`);
  }

  /** The response's body as a stream that fails on an abort or when no chunk comes for `timeoutMs`. */
  private bodyStream(response: Response, what: string): Readable {
    const controller = responseControllers.get(response);
    const signal = this.options.signal;
    let timer: NodeJS.Timeout | undefined;
    const guard = new Transform({
      transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
        arm();
        callback(null, chunk);
      },
      flush(callback: TransformCallback): void {
        clearTimeout(timer);
        callback();
      },
    });
    const timeoutMs = this.timeoutMs;
    const fail = (error: unknown): void => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      guard.destroy(error instanceof Error ? error : new Error(String(error)));
      controller?.abort();
    };
    const arm = (): void => {
      clearTimeout(timer);
      timer = setTimeout(
        () =>
          fail(
            new PolydevError(
              "upstream_unreachable",
              `the registry stalled for ${timeoutMs} ms sending ${what}`,
            ),
          ),
        timeoutMs,
      );
    };
    const onAbort = (): void => fail(signal?.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    guard.on("close", () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      controller?.abort();
    });
    arm();
    if (response.body === null) {
      guard.end();
      return guard;
    }
    const source = Readable.fromWeb(response.body as unknown as WebReadableStream<Uint8Array>);
    source.on("error", (error) => {
      if (!guard.destroyed) {
        fail(
          error instanceof PolydevError
            ? error
            : new PolydevError("upstream_unreachable", `the connection broke while receiving ${what}`),
        );
      }
    });
    source.pipe(guard);
    return guard;
  }

  /** Reads a whole (JSON) body of at most `maxBytes`. */
  private async readBody(response: Response, maxBytes: number, what: string): Promise<Buffer> {
    const length = contentLength(response);
    const tooLarge = (): PolydevError =>
      new PolydevError("payload_too_large", `${what} is larger than ${maxBytes} bytes`, {
        details: { maxBytes },
      });
    if (length !== null && length > maxBytes) {
      await cancel(response);
      throw tooLarge();
    }
    const stream = this.bodyStream(response, what);
    const chunks: Buffer[] = [];
    let size = 0;
    try {
      for await (const chunk of stream) {
        size += (chunk as Buffer).length;
        if (size > maxBytes) throw tooLarge();
        chunks.push(chunk as Buffer);
      }
    } finally {
      stream.destroy();
    }
    return Buffer.concat(chunks);
  }
}

class TimeoutMarker extends Error {}

const responseControllers = new WeakMap<Response, AbortController>();

function basic(credentials: { username: string; password: string }): string {
  return Buffer.from(`${credentials.username}:${credentials.password}`).toString("base64");
}

function contentLength(response: Response): number | null {
  const header = response.headers.get("content-length");
  if (header === null || !/^\d{1,16}$/.test(header)) return null;
  return Number(header);
}

async function cancel(response: Response): Promise<void> {
  await response.body?.cancel().catch(() => {});
}

/** A bounded, printable excerpt of a registry error body (`errors[].code`), for messages. */
async function errorDetail(response: Response): Promise<string> {
  if (response.body === null) return "";
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < MAX_ERROR_BODY_BYTES) {
      const step = await Promise.race([
        reader.read(),
        new Promise<{ done: true; value: undefined }>((resolve) =>
          setTimeout(() => resolve({ done: true, value: undefined }), 2000).unref(),
        ),
      ]);
      if (step.done) break;
      chunks.push(step.value);
      size += step.value.length;
    }
  } catch {
    return "";
  } finally {
    await reader.cancel().catch(() => {});
  }
  try {
    const parsed = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { errors?: { code?: unknown }[] };
    const codes = (parsed.errors ?? [])
      .map((entry) => entry.code)
      .filter((code): code is string => typeof code === "string" && /^[A-Z_]{1,64}$/.test(code));
    return codes.length > 0 ? ` (${codes.slice(0, 3).join(", ")})` : "";
  } catch {
    return "";
  }
}

/** Splits `Bearer realm="…",service="…",scope="…"`. */
export function parseChallenge(header: string | null): Challenge | null {
  if (header === null || header.length > 4096) return null;
  const match = /^\s*([A-Za-z]+)\s*(.*)$/.exec(header);
  if (match === null) return null;
  const params: Record<string, string> = {};
  const pattern = /([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?\s*/g;
  for (const param of (match[2] ?? "").matchAll(pattern)) {
    const key = (param[1] ?? "").toLowerCase();
    params[key] = (param[2] ?? param[3] ?? "").replace(/\\(.)/g, "$1");
  }
  return { scheme: (match[1] ?? "").toLowerCase(), params };
}
