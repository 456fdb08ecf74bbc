/**
 * The image store: build from a Dockerfile (text, or a tar of it and its context), pull from a
 * registry, import an OCI or docker-archive tar, list, tag, delete, and read or follow a build log.
 * Image names hold "/" and ":" and are URL-encoded here.
 */
import type { components } from "./api-types.js";
import type { CallOptions } from "./client.js";
import type { ApiTransport } from "./transport.js";

export type Image = components["schemas"]["Image"];
export type ImageDetail = components["schemas"]["ImageDetail"];

export type BuildImage =
  | { name: string; dockerfile: string; buildArgs?: Record<string, string> }
  /** A tar holding `Dockerfile` at its top and the files COPY reads. */
  | { name: string; context: BodyInit };

const enc = encodeURIComponent;
const signalOf = (call: CallOptions) => (call.signal ? { signal: call.signal } : {});

/** A streamed tar upload (`duplex` lets Node send a stream body). */
function upload(body: BodyInit, call: CallOptions): RequestInit {
  const init: RequestInit & { duplex: "half" } = {
    method: "POST",
    headers: { "content-type": "application/x-tar" },
    body,
    duplex: "half",
    ...signalOf(call),
  };
  return init;
}

/** Builds `polydev.images`. */
export function imagesApi(transport: ApiTransport) {
  const json = async <T>(path: string, init: RequestInit): Promise<T> =>
    (await (await transport.raw(path, init)).json()) as T;
  return {
    /** Your images and the system ones (polydev/base). @example const { images } = await polydev.images.list(); */
    list: (call: CallOptions = {}) => json<{ images: Image[] }>("/v1/images", signalOf(call)),
    /** State, layers, config and build log. @example const image = await polydev.images.get("alice/node:1"); */
    get: (name: string, call: CallOptions = {}) =>
      json<ImageDetail>(`/v1/images/${enc(name)}`, signalOf(call)),
    /**
     * Starts a Dockerfile build; the answer is the image in `building` (follow `log`, or poll `get`).
     * @example await polydev.images.build({ name: "alice/node:1", dockerfile: "FROM polydev/base\nRUN apt-get install -y nodejs" });
     */
    build: (body: BuildImage, call: CallOptions = {}) =>
      "context" in body
        ? json<Image>(`/v1/images?name=${enc(body.name)}`, upload(body.context, call))
        : json<Image>("/v1/images", {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify(body),
            ...signalOf(call),
          }),
    /**
     * Starts pulling from a registry; the answer is the image in `building`.
     * @example await polydev.images.pull("alice/debian:12", "docker.io/library/debian:12");
     */
    pull: (name: string, reference: string, call: CallOptions = {}) =>
      json<Image>("/v1/images", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ name, pull: reference }),
        ...signalOf(call),
      }),
    /**
     * Imports an OCI image layout or `docker save` tar (not gzipped); answers the ready image.
     * @example await polydev.images.import("alice/app:1", createReadStream("app.tar"));
     */
    import: (name: string, archive: BodyInit, call: CallOptions = {}) =>
      json<Image>(`/v1/images/import?name=${enc(name)}`, upload(archive, call)),
    /** Another name for the same image. @example await polydev.images.tag("alice/node:1", "alice/node:latest"); */
    tag: (name: string, newName: string, call: CallOptions = {}) =>
      json<Image>(`/v1/images/${enc(name)}/tag`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ name: newName }),
        ...signalOf(call),
      }),
    /** Throws ConflictError (`image_in_use`) while a sandbox made from it exists. @example await polydev.images.delete("alice/node:1"); */
    delete: async (name: string, call: CallOptions = {}): Promise<void> => {
      await transport.raw(`/v1/images/${enc(name)}`, { method: "DELETE", ...signalOf(call) });
    },
    /**
     * The build log as text chunks; with `follow`, until the build ends.
     * @example for await (const text of polydev.images.log("alice/node:1", { follow: true })) process.stdout.write(text);
     */
    log: (name: string, options: CallOptions & { follow?: boolean } = {}): AsyncGenerator<string> =>
      readLog(transport, name, options),
  };
}

async function* readLog(
  transport: ApiTransport,
  name: string,
  options: CallOptions & { follow?: boolean },
): AsyncGenerator<string> {
  const response = await transport.raw(
    `/v1/images/${enc(name)}/log${options.follow ? "?follow=true" : ""}`,
    signalOf(options),
  );
  if (!response.body) return;
  const decoder = new TextDecoder();
  const reader = response.body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      const text = decoder.decode(value, { stream: true });
      if (text) yield text;
    }
    const rest = decoder.decode();
    if (rest) yield rest;
  } finally {
    reader.releaseLock();
  }
}
