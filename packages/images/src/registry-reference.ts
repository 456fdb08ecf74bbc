import { PolydevError } from "@polydev/core";
import { DIGEST_PATTERN } from "./blob-store.js";

/** A parsed image reference, as Docker normalises it. */
export interface ImageReference {
  /** `host[:port]` as written (`docker.io` for Docker Hub). */
  registry: string;
  /** The repository path, e.g. `library/debian`. */
  repository: string;
  tag?: string;
  digest?: string;
  /** The tag, or the digest when pinned (a digest wins over a tag, as Docker does). */
  reference: string;
}

export const DOCKER_HUB = "docker.io";
/** Where Docker Hub's distribution API answers. */
export const DOCKER_HUB_API_HOST = "registry-1.docker.io";

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const HOST =
  /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$/;
const MAX_REFERENCE_LENGTH = 512;

/**
 * Parses `registry.example.com:5000/ns/name:tag`, `name@sha256:…` and `name` (Docker Hub, `library/`,
 * `latest`) the way Docker does: the first component is a registry when it has a `.` or a `:` or is
 * `localhost`. Anything else is `invalid_request`.
 */
export function parseImageReference(input: string): ImageReference {
  const refuse = (why: string): never => {
    throw new PolydevError(
      "invalid_request",
      `${JSON.stringify(input.slice(0, 120))} is not an image reference: ${why}`,
    );
  };
  if (typeof input !== "string" || input.length === 0) refuse("it is empty");
  if (input.length > MAX_REFERENCE_LENGTH) refuse(`it is longer than ${MAX_REFERENCE_LENGTH} characters`);
  let rest = input;
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST_PATTERN.test(digest)) refuse("the digest is not sha256:<64 lower-case hex>");
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf("/");
  const colon = rest.lastIndexOf(":");
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) refuse("the tag is not [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}");
  }
  const parts = rest.split("/");
  let registry = DOCKER_HUB;
  const first = parts[0] ?? "";
  if (parts.length > 1 && (first.includes(".") || first.includes(":") || first === "localhost")) {
    registry = first;
    parts.shift();
    if (!HOST.test(registry)) refuse("the registry is not host[:port]");
  }
  if (registry === "index.docker.io") registry = DOCKER_HUB;
  if (registry === DOCKER_HUB && parts.length === 1) parts.unshift("library");
  if (parts.length === 0 || parts.some((part) => !COMPONENT.test(part))) {
    refuse("the repository must be lower-case components of [a-z0-9] joined by '.', '_', '__' or '-'");
  }
  const repository = parts.join("/");
  if (repository.length > 255) refuse("the repository is longer than 255 characters");
  if (tag === undefined && digest === undefined) tag = "latest";
  return { registry, repository, tag, digest, reference: digest ?? (tag as string) };
}
