/** The relay's header rules and the port listing's parser, on fixed inputs. */
import { describe, expect, it } from "vitest";
import { parseListing } from "./preview-ports.js";
import { answerHeadersForClient, requestHeadersForSandbox, scopeCookie } from "./preview-relay.js";

describe("headers towards the sandbox", () => {
  it("drops hop-by-hop headers, those the Connection header names, and Polydev's credentials", () => {
    const out = requestHeadersForSandbox(
      {
        host: "polydev.example:7420",
        connection: "keep-alive, x-secret-hop",
        "x-secret-hop": "1",
        "keep-alive": "timeout=5",
        "transfer-encoding": "chunked",
        authorization: "Bearer pd_key",
        "x-csrf-token": "csrf",
        "x-forwarded-for": "1.2.3.4",
        cookie: "polydev_session=s; a=1; POLYDEV_preview=p; b=2",
        accept: "text/html",
      },
      { port: 3000 },
      { prefix: "/p/x", forwarded: { host: "polydev.example:7421", proto: "http" } },
      false,
    );
    expect(out).toEqual({
      accept: "text/html",
      cookie: "a=1; b=2",
      host: "localhost:3000",
      "x-forwarded-host": "polydev.example:7421",
      "x-forwarded-proto": "http",
      "x-forwarded-prefix": "/p/x",
    });
  });
});

describe("headers towards the client", () => {
  it("scopes cookies under the prefix, drops Domain and Polydev's names, prefixes redirects, adds CSP", () => {
    const out = answerHeadersForClient(
      {
        "set-cookie": ["sid=1; Domain=example.com; Path=/app; Secure", "polydev_session=x", "plain=2"],
        location: "/login",
        "content-security-policy": "default-src 'self'",
        connection: "close",
        "transfer-encoding": "chunked",
      },
      { prefix: "/p/t", answerHeaders: { "content-security-policy": "sandbox" } },
    );
    expect(out["set-cookie"]).toEqual(["sid=1; Secure; Path=/p/t/app", "plain=2; Path=/p/t/"]);
    expect(out.location).toBe("/p/t/login");
    // Both policies are enforced: the sandbox's own cannot loosen ours.
    expect(out["content-security-policy"]).toEqual(["sandbox", "default-src 'self'"]);
    expect(out.connection).toBeUndefined();
    expect(out["transfer-encoding"]).toBeUndefined();
    expect(
      answerHeadersForClient({ location: "//evil.example/x" }, { prefix: "/p/t", answerHeaders: {} })
        .location,
    ).toBe("//evil.example/x");
  });

  it("keeps a cookie at the root in host mode", () => {
    expect(scopeCookie("a=1; HttpOnly", "")).toBe("a=1; HttpOnly; Path=/");
    expect(scopeCookie("=nameless", "")).toBeUndefined();
  });
});

describe("listing ports", () => {
  it("reads LISTEN sockets of tcp and tcp6, and names their process", () => {
    const text = [
      "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
      "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 111 1",
      "   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000  1000        0 112 1",
      "   2: 00000000:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 113 1",
      "  sl  local_address                         remote_address                        st",
      "   0: 00000000000000000000000001000000:1538 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 114 1",
      "#fds",
      "/proc/7/fd:",
      "lrwx------ 1 u u 64 Dec  7 10:00 3 -> socket:[111]",
      "/proc/9/fd:",
      "lrwx------ 1 u u 64 Dec  7 10:00 5 -> socket:[114]",
      "#comm",
      "==> /proc/7/comm <==",
      "python3",
      "",
      "==> /proc/9/comm <==",
      "node",
    ].join("\n");
    expect(parseListing(text)).toEqual([
      { port: 3000, address: "0.0.0.0", process: null },
      { port: 5432, address: "::1", process: { pid: 9, name: "node" } },
      { port: 8080, address: "127.0.0.1", process: { pid: 7, name: "python3" } },
    ]);
  });
});
