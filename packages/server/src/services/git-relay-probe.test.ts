/**
 * Escape probe for the git relay: what a sandbox process could send to it, sent raw. The
 * sandbox side is stood in for by a loopback listener handing each connection to the relay as
 * the agent's forward.out would; the remote is a recording HTTP server. Nothing here may reach
 * another host or path, see the token, or outlive the git command.
 */
import type { IncomingHttpHeaders } from "node:http";
import { createServer } from "node:http";
import type { AddressInfo, Server } from "node:net";
import { connect, createServer as createNetServer } from "node:net";
import type { AgentConnection, ForwardedPort } from "@polydev/core";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { remoteTarget, withGitRelay } from "./git-relay.js";

const TOKEN = "glpat_relay_probe_token_0123456789";
const BASIC = Buffer.from(`oauth2:${TOKEN}`).toString("base64");

interface Seen {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
}

let remote: ReturnType<typeof createServer>;
let remoteHost: string;
const seen: Seen[] = [];

/** A connection as the sandbox's forwarder makes it: real loopback sockets handed to `accept`. */
function standInConnection(): AgentConnection {
  return {
    forwardOut: async (port: number, accept: (socket: import("node:stream").Duplex) => void) => {
      const listener: Server = createNetServer((socket) => accept(socket));
      await new Promise<void>((resolve, reject) => {
        listener.once("error", reject);
        listener.listen(port, "127.0.0.1", resolve);
      });
      let closed!: () => void;
      const done = new Promise<void>((resolve) => {
        closed = resolve;
      });
      const forwarded: ForwardedPort = {
        close: () => listener.close(() => closed()),
        closed: done,
      };
      return forwarded;
    },
  } as unknown as AgentConnection;
}

/** One raw HTTP/1.1 exchange on the relay's port; the whole answer as text. */
function raw(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    let answer = "";
    socket.on("data", (chunk) => {
      answer += chunk.toString("latin1");
    });
    socket.on("end", () => resolve(answer));
    socket.on("error", reject);
    socket.write(request);
  });
}

beforeAll(async () => {
  remote = createServer((req, res) => {
    seen.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers });
    req.resume();
    if (req.url?.startsWith("/org/app.git/info/refs?service=git-receive-pack")) {
      res.writeHead(302, { location: "http://elsewhere.example/steal" });
      res.end();
      return;
    }
    if (req.method === "POST" && req.url === "/org/app.git/git-receive-pack") {
      res.writeHead(401, { "www-authenticate": 'Basic realm="x"' });
      res.end("no");
      return;
    }
    res.writeHead(200, {
      "content-type": "application/x-git-upload-pack-advertisement",
      "set-cookie": "session=remote-secret",
    });
    res.end(`echo: ${req.headers.authorization ? "had authorization" : "none"}`);
  });
  await new Promise<void>((resolve) => remote.listen(0, "127.0.0.1", resolve));
  remoteHost = `127.0.0.1:${(remote.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => remote.close(() => resolve())));

describe("the git relay, probed from the sandbox's side", () => {
  it("serves only git's calls for its one repository and never shows the token", async () => {
    const target = remoteTarget(`http://${remoteHost}/org/app.git`, [remoteHost]);
    let port = 0;
    const answers = await withGitRelay(
      standInConnection(),
      target,
      { username: "oauth2", token: TOKEN },
      pino({ level: "silent" }),
      async (relayUrl) => {
        port = Number(new URL(relayUrl).port);
        expect(relayUrl).toBe(`http://127.0.0.1:${port}/org/app.git`);
        const ask = (line: string, headers = "") =>
          raw(port, `${line}\r\nHost: 127.0.0.1\r\n${headers}Connection: close\r\n\r\n`);
        return {
          ok: await ask("GET /org/app.git/info/refs?service=git-upload-pack HTTP/1.1"),
          // Another repository, another host (absolute form), a traversal, another endpoint.
          otherRepo: await ask("GET /org/secret.git/info/refs?service=git-upload-pack HTTP/1.1"),
          absolute: await ask("GET http://169.254.169.254/latest/meta-data HTTP/1.1"),
          traversal: await ask("GET /org/app.git/../secret.git/info/refs?service=git-upload-pack HTTP/1.1"),
          otherPath: await ask("GET /org/app.git/HEAD HTTP/1.1"),
          // A Host header naming another host changes nothing: the remote is fixed.
          spoofedHost: await ask(
            "GET /org/app.git/info/refs?service=git-upload-pack HTTP/1.1",
            "Host: 169.254.169.254\r\nAuthorization: Basic c3RvbGVu\r\nCookie: a=b\r\n",
          ),
          redirect: await ask("GET /org/app.git/info/refs?service=git-receive-pack HTTP/1.1"),
          challenge: await raw(
            port,
            "POST /org/app.git/git-receive-pack HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
          ),
        };
      },
    );
    expect(answers.ok).toMatch(/^HTTP\/1\.1 200/);
    expect(answers.ok).toContain("echo: had authorization");
    for (const refused of [answers.otherRepo, answers.absolute, answers.traversal, answers.otherPath])
      expect(refused).toMatch(/^HTTP\/1\.1 403/);
    expect(answers.spoofedHost).toMatch(/^HTTP\/1\.1 200/);
    // A redirect is not passed on, an auth challenge becomes a plain refusal (git must not ask anyone).
    expect(answers.redirect).toMatch(/^HTTP\/1\.1 502/);
    expect(answers.redirect).not.toContain("elsewhere.example");
    expect(answers.challenge).toMatch(/^HTTP\/1\.1 403/);
    expect(answers.challenge.toLowerCase()).not.toContain("www-authenticate");
    for (const answer of Object.values(answers)) {
      expect(answer).not.toContain(TOKEN);
      expect(answer).not.toContain(BASIC);
      expect(answer).not.toContain("remote-secret");
    }
    // The remote saw only the allowed calls, each with the relay's own Authorization (never the
    // sandbox's), and no cookie.
    expect(seen.map((s) => `${s.method} ${s.url}`)).toEqual([
      "GET /org/app.git/info/refs?service=git-upload-pack",
      "GET /org/app.git/info/refs?service=git-upload-pack",
      "GET /org/app.git/info/refs?service=git-receive-pack",
      "POST /org/app.git/git-receive-pack",
    ]);
    for (const s of seen) {
      expect(s.headers.authorization).toBe(`Basic ${BASIC}`);
      expect(s.headers.cookie).toBeUndefined();
      expect(s.headers.host).toBe(remoteHost);
    }
    // Once the command ended the port is closed.
    await expect(raw(port, "GET / HTTP/1.1\r\n\r\n")).rejects.toThrow(/ECONNREFUSED/);
  });

  it("refuses a private remote the operator did not list, before anything is relayed", () => {
    expect(() => remoteTarget(`http://${remoteHost}/org/app.git`, [])).toThrow(/only over https/);
  });
});
