/** The host side of the git relay and forge calls reaches only what the operator allows. */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { networkInterfaces } from "node:os";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isPrivateAddress, publicOnlyAgent, remoteTarget } from "./git-relay.js";

describe("remote targets", () => {
  it("takes https remotes and names their host and repository path", () => {
    expect(remoteTarget("https://GitHub.com/org/app.git/", [])).toEqual({
      origin: "https://github.com",
      host: "github.com",
      path: "/org/app.git",
      insecure: false,
    });
  });

  it("refuses plain http unless the operator listed the host, and user names in the URL", () => {
    expect(() => remoteTarget("http://git.lan/org/app.git", [])).toThrow(/only over https/);
    expect(remoteTarget("http://git.lan:8080/app.git", ["git.lan:8080"]).insecure).toBe(true);
    expect(() => remoteTarget("https://me:pw@github.com/org/app.git", [])).toThrow(/user name/);
    expect(() => remoteTarget("https://github.com/", [])).toThrow(/no repository path/);
    expect(() => remoteTarget("not a url", [])).toThrow(/not a URL/);
  });

  it("knows private addresses", () => {
    for (const a of [
      "127.0.0.1",
      "10.1.2.3",
      "192.168.0.1",
      "172.20.0.1",
      "169.254.169.254",
      "::1",
      "fd00::1",
      "::ffff:127.0.0.1",
    ])
      expect(isPrivateAddress(a), a).toBe(true);
    for (const a of ["140.82.112.3", "2606:4700::1111"]) expect(isPrivateAddress(a), a).toBe(false);
    // This host's own addresses too, whatever range they are in (a public one reaches the
    // host's own services).
    for (const own of Object.values(networkInterfaces()).flat())
      if (own) expect(isPrivateAddress(own.address.split("%")[0] ?? ""), own.address).toBe(true);
  });
});

describe("the public-only dispatcher", () => {
  let server: ReturnType<typeof createServer>;
  let port: number;
  beforeAll(async () => {
    server = createServer((_req, res) => res.end("internal"));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it("does not connect to a name that resolves to loopback; the insecure one does", async () => {
    const refused = publicOnlyAgent(false);
    await expect(request(`http://localhost:${port}/`, { dispatcher: refused })).rejects.toThrow(
      /private address/,
    );
    await refused.close();
    const allowed = publicOnlyAgent(true);
    const response = await request(`http://localhost:${port}/`, { dispatcher: allowed });
    expect(await response.body.text()).toBe("internal");
    await allowed.close();
  });
});
