/**
 * Opens the host side of an allowed connection: straight to the checked address, or through
 * the operator's upstream proxy with `CONNECT` (the name when known, so the proxy's own
 * policy and logs see it; else the address).
 */
import { connect, isIPv6, type Socket } from "node:net";
import { PolydevError } from "@polydev/core";

export interface UpstreamProxy {
  host: string;
  port: number;
  /** `Proxy-Authorization` value when the URL carries user info. */
  authorization: string | undefined;
}

/** Parses `http://[user:pass@]host:port`; `invalid_request` for anything else. */
export function parseUpstreamProxy(url: string): UpstreamProxy {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new PolydevError(
      "invalid_request",
      "the upstream proxy must be a URL like http://proxy.example:3128",
    );
  }
  if (parsed.protocol !== "http:" || parsed.hostname === "" || parsed.pathname.length > 1) {
    throw new PolydevError(
      "invalid_request",
      "the upstream proxy must be a URL like http://proxy.example:3128",
    );
  }
  const host = parsed.hostname.replace(/^\[(.*)\]$/, "$1");
  const port = parsed.port === "" ? 80 : Number(parsed.port);
  const authorization =
    parsed.username === ""
      ? undefined
      : `Basic ${Buffer.from(`${decodeURIComponent(parsed.username)}:${decodeURIComponent(parsed.password)}`).toString("base64")}`;
  return { host, port, authorization };
}

const MAX_PROXY_RESPONSE_HEAD_BYTES = 8192;

/** A connected socket, plus any bytes the proxy already sent past its response head. */
export interface UpstreamConnection {
  socket: Socket;
  early: Buffer;
}

export function connectUpstream(options: {
  address: string;
  name: string | undefined;
  port: number;
  proxy: UpstreamProxy | undefined;
  timeoutMs: number;
}): Promise<UpstreamConnection> {
  const { proxy } = options;
  const host = proxy?.host ?? options.address;
  const port = proxy?.port ?? options.port;
  return new Promise<UpstreamConnection>((resolve, reject) => {
    const socket = connect({ host, port, noDelay: true });
    const timer = setTimeout(() => fail(new Error("connect timed out")), options.timeoutMs);
    let head = Buffer.alloc(0);
    const fail = (error: Error): void => {
      clearTimeout(timer);
      socket.destroy();
      reject(error);
    };
    const done = (early: Buffer): void => {
      clearTimeout(timer);
      socket.off("error", fail);
      socket.off("data", onProxyData);
      socket.off("end", onProxyEnd);
      socket.pause();
      resolve({ socket, early });
    };
    const onProxyEnd = (): void => fail(new Error("the upstream proxy closed the connection"));
    const onProxyData = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf("\r\n\r\n");
      if (end === -1) {
        if (head.length > MAX_PROXY_RESPONSE_HEAD_BYTES)
          fail(new Error("the upstream proxy's response is too long"));
        return;
      }
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(head.subarray(0, end).toString("latin1"));
      if (status === null || !status[1]?.startsWith("2")) {
        fail(new Error(`the upstream proxy refused: ${status?.[1] ?? "bad response"}`));
        return;
      }
      done(head.subarray(end + 4));
    };
    socket.once("error", fail);
    socket.once("connect", () => {
      if (proxy === undefined) {
        done(Buffer.alloc(0));
        return;
      }
      const target = options.name ?? options.address;
      const authority = `${isIPv6(target) ? `[${target}]` : target}:${options.port}`;
      const authorization =
        proxy.authorization === undefined ? "" : `Proxy-Authorization: ${proxy.authorization}\r\n`;
      socket.on("data", onProxyData);
      socket.on("end", onProxyEnd);
      socket.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n${authorization}\r\n`);
    });
  });
}
