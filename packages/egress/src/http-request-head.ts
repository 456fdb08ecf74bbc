/**
 * Reads the destination host of an HTTP/1 request from its head: the Host header, or the
 * authority of an absolute-form or CONNECT request target (RFC 9112 §3.2; an origin server
 * uses the target's authority then, so the policy must too). Only the first request of a
 * connection is read: see README.md on what that leaves open.
 */
export type HttpRequestResult =
  | { kind: "incomplete" }
  | { kind: "not_http" }
  /**
   * A request head. `host` is the host part (no port, IPv6 brackets removed), undefined when
   * the request names none; `conflicting` when it names several different hosts.
   */
  | { kind: "http_request"; host: string | undefined; conflicting: boolean };

const REQUEST_LINE_START = /^[A-Z]{1,20} /;

export function readHttpRequestHead(bytes: Buffer): HttpRequestResult {
  const start = bytes.subarray(0, 22).toString("latin1");
  if (!REQUEST_LINE_START.test(start)) {
    // Too few bytes to tell yet, if what we have is a plausible method prefix.
    return /^[A-Z]{0,20}$/.test(start) ? { kind: "incomplete" } : { kind: "not_http" };
  }
  const text = bytes.toString("latin1");
  const end = text.search(/\r?\n\r?\n/);
  if (end === -1) return { kind: "incomplete" };
  const lines = text.slice(0, end).split(/\r?\n/);
  const requestLine = /^([A-Z]{1,20}) (\S+) HTTP\/1\.[01]$/.exec(lines[0] ?? "");
  if (requestLine === null) return { kind: "not_http" };
  const hosts = new Set<string>();
  const method = requestLine[1];
  const target = requestLine[2] ?? "";
  if (method === "CONNECT") {
    hosts.add(hostOfAuthority(target));
  } else {
    const absolute = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/([^/?#]*)/.exec(target);
    if (absolute !== null) hosts.add(hostOfAuthority((absolute[1] ?? "").replace(/^.*@/, "")));
  }
  for (const line of lines.slice(1)) {
    const header = /^host[ \t]*:[ \t]*(.*?)[ \t]*$/i.exec(line);
    if (header !== null) hosts.add(hostOfAuthority(header[1] ?? ""));
  }
  const [first] = hosts;
  return { kind: "http_request", host: first, conflicting: hosts.size > 1 };
}

function hostOfAuthority(authority: string): string {
  const bracketed = /^\[([^\]]*)\](?::\d*)?$/.exec(authority);
  if (bracketed !== null) return bracketed[1] ?? "";
  return authority.replace(/:\d*$/, "").toLowerCase().replace(/\.$/, "");
}
