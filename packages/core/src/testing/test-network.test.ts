import { execFile, spawn } from "node:child_process";
import { createSocket } from "node:dgram";
import { Resolver } from "node:dns/promises";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { connect } from "node:net";
import { resolve } from "node:path";
import dnsPacket from "dns-packet";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitFor } from "./run-command.js";
import type { TestNetwork } from "./test-network.js";
import { startTestNetwork, testNetworkUnavailable } from "./test-network.js";

const unavailable = testNetworkUnavailable();

function ipOutput(args: string[]): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    execFile("/usr/sbin/ip", args, (error, stdout) => (error ? reject(error) : resolvePromise(stdout)));
  });
}

async function namespaces(): Promise<string[]> {
  return (await ipOutput(["netns", "list"])).split("\n").map((line) => line.split(" ")[0] ?? "");
}

function get(
  url: string,
  options: { host: string; ca?: string; servername?: string },
): Promise<{ status: number; body: string }> {
  const parsed = new URL(url);
  const send = parsed.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise((resolvePromise, reject) => {
    const request = send(
      {
        host: parsed.hostname,
        port: parsed.port,
        path: parsed.pathname,
        headers: { host: options.host },
        ca: options.ca,
        servername: options.servername,
        agent: false,
        timeout: 10_000,
      },
      (response) => {
        let body = "";
        response.on("data", (chunk: Buffer) => {
          body += chunk.toString();
        });
        response.on("end", () => resolvePromise({ status: response.statusCode ?? 0, body }));
      },
    );
    request.on("timeout", () => request.destroy(new Error("timed out")));
    request.on("error", reject);
    request.end();
  });
}

describe.skipIf(unavailable !== undefined)(
  `test network${unavailable ? ` (skipped: ${unavailable})` : ""}`,
  () => {
    let network: TestNetwork;
    beforeAll(async () => {
      network = await startTestNetwork({
        zone: { "Registry.Example.test": ["198.18.0.1", "198.18.0.2"], "other.example.test": ["10.1.2.3"] },
      });
    });
    afterAll(async () => {
      await network?.close();
    });

    it("gives addresses in TEST-NET-3 and a private one, all routed from the root namespace", () => {
      expect(network.namespace).toMatch(/^pdtest-[0-9a-f]{8}$/);
      for (const address of [network.hostAddress, network.serverAddress])
        expect(address).toMatch(/^203\.0\.113\./);
      expect(network.privateServerAddress).toMatch(/^10\./);
      expect(network.privateServerAddress).not.toMatch(/^10\.0\./);
    });

    it("answers HTTP with the Host header on both addresses and records each request", async () => {
      const viaPublic = await get(`http://${network.serverAddress}:${network.httpPort}/first`, {
        host: "registry.example.test",
      });
      expect(viaPublic).toEqual({ status: 200, body: "hello from registry.example.test" });
      const viaPrivate = await get(`http://${network.privateServerAddress}:${network.httpPort}/second`, {
        host: "other.example.test",
      });
      expect(viaPrivate.body).toBe("hello from other.example.test");
      const requests = await network.requests();
      expect(requests).toEqual([
        expect.objectContaining({
          protocol: "http",
          host: "registry.example.test",
          path: "/first",
          remoteAddress: network.hostAddress,
          sni: null,
        }),
        expect.objectContaining({ protocol: "http", host: "other.example.test", path: "/second" }),
      ]);
    });

    it("serves HTTPS with a certificate that verifies against caCertPem for each zone name (SNI)", async () => {
      const response = await get(`https://${network.serverAddress}:${network.httpsPort}/tls`, {
        host: "other.example.test",
        servername: "registry.example.test",
        ca: network.caCertPem,
      });
      expect(response).toEqual({ status: 200, body: "hello from other.example.test" });
      expect((await network.requests()).at(-1)).toEqual(
        expect.objectContaining({
          protocol: "https",
          host: "other.example.test",
          sni: "registry.example.test",
          path: "/tls",
        }),
      );
      // The verification is real: a name outside the zone, or no CA, does not verify.
      await expect(
        get(`https://${network.serverAddress}:${network.httpsPort}/`, {
          host: "x",
          servername: "elsewhere.test",
          ca: network.caCertPem,
        }),
      ).rejects.toThrow(/altnames|does not match/i);
      await expect(
        get(`https://${network.serverAddress}:${network.httpsPort}/`, {
          host: "x",
          servername: "registry.example.test",
        }),
      ).rejects.toThrow(/certificate/i);
    });

    it("answers A queries from the zone over UDP, NXDOMAIN for other names, nothing for AAAA", async () => {
      const resolver = new Resolver({ timeout: 2000, tries: 1 });
      resolver.setServers([network.dnsServer]);
      expect((await resolver.resolve4("REGISTRY.example.test")).sort()).toEqual(["198.18.0.1", "198.18.0.2"]);
      await expect(resolver.resolve4("missing.example.test")).rejects.toMatchObject({ code: "ENOTFOUND" });
      await expect(resolver.resolve6("registry.example.test")).rejects.toMatchObject({ code: "ENODATA" });
      expect(await network.dnsQueries()).toEqual(
        expect.arrayContaining([
          { name: "registry.example.test", type: "A", transport: "udp", remoteAddress: network.hostAddress },
          expect.objectContaining({ name: "missing.example.test", type: "A" }),
        ]),
      );
    });

    it("answers DNS over TCP, two queries on one connection", async () => {
      const socket = connect(53, network.serverAddress);
      const query = (id: number, name: string): Buffer =>
        dnsPacket.streamEncode({ type: "query", id, questions: [{ type: "A", name }] });
      socket.write(Buffer.concat([query(1, "other.example.test"), query(2, "missing.test")]));
      let received = Buffer.alloc(0);
      const answers = await new Promise<dnsPacket.Packet[]>((resolvePromise, reject) => {
        socket.on("error", reject);
        socket.on("data", (chunk: Buffer) => {
          received = Buffer.concat([received, chunk]);
          const first = received.readUInt16BE(0);
          if (received.length < 2 + first + 2) return;
          const second = received.readUInt16BE(2 + first);
          if (received.length < 4 + first + second) return;
          resolvePromise([
            dnsPacket.decode(received.subarray(2, 2 + first)),
            dnsPacket.decode(received.subarray(4 + first, 4 + first + second)),
          ]);
        });
      });
      socket.destroy();
      expect(answers[0]?.answers?.map((answer) => ("data" in answer ? answer.data : undefined))).toEqual([
        "10.1.2.3",
      ]);
      expect(answers[1]).toMatchObject({ id: 2, rcode: "NXDOMAIN" });
    });

    it("changes its answers when the zone is replaced", async () => {
      await network.setZone({ "other.example.test": ["127.0.0.1"] });
      const resolver = new Resolver({ timeout: 2000, tries: 1 });
      resolver.setServers([network.dnsServer]);
      expect(await resolver.resolve4("other.example.test")).toEqual(["127.0.0.1"]);
      await expect(resolver.resolve4("registry.example.test")).rejects.toMatchObject({ code: "ENOTFOUND" });
    });

    it("echoes UDP datagrams and records them", async () => {
      const socket = createSocket("udp4");
      const echoed = new Promise<string>((resolvePromise) =>
        socket.once("message", (message) => resolvePromise(message.toString())),
      );
      socket.send("ping", network.udpEchoPort, network.serverAddress);
      expect(await echoed).toBe("ping");
      socket.close();
      expect(await network.datagrams()).toEqual([{ remoteAddress: network.hostAddress, bytes: 4 }]);
    });
  },
);

describe.skipIf(unavailable !== undefined)(
  `test network cleanup${unavailable ? ` (skipped: ${unavailable})` : ""}`,
  () => {
    it("close() removes the namespace and the veth pair", async () => {
      const network = await startTestNetwork({ zone: {} });
      expect(await namespaces()).toContain(network.namespace);
      await network.close();
      expect(await namespaces()).not.toContain(network.namespace);
      const routes = await ipOutput(["-4", "route", "show"]);
      expect(routes).not.toContain(network.serverAddress.split(".").slice(0, 3).join("."));
      expect(routes).not.toContain(network.privateServerAddress);
    });

    it("starts several networks at once, each with its own namespace, addresses and records", async () => {
      const networks = await Promise.all(
        [0, 1, 2].map(() => startTestNetwork({ zone: { "parallel.test": ["198.18.0.1"] } })),
      );
      try {
        expect(new Set(networks.map((network) => network.namespace)).size).toBe(3);
        expect(new Set(networks.map((network) => network.serverAddress)).size).toBe(3);
        for (const [index, network] of networks.entries()) {
          const response = await get(`http://${network.serverAddress}/${index}`, { host: "parallel.test" });
          expect(response.body).toBe("hello from parallel.test");
        }
        for (const [index, network] of networks.entries())
          expect((await network.requests()).map((request) => request.path)).toEqual([`/${index}`]);
      } finally {
        await Promise.all(networks.map((network) => network.close()));
      }
    });

    it("holds a script open until close() is done, with nothing else keeping it alive", async () => {
      const fixture = resolve(import.meta.dirname, "test-network.ts");
      // Each step awaits the fixture alone: an event loop left with nothing ref'd would end the
      // script early (exit 13, unsettled top-level await) and leave the namespace behind.
      const script = `import { startTestNetwork } from ${JSON.stringify(fixture)};
const network = await startTestNetwork({ zone: {} });
await network.setZone({ "a.test": ["198.18.0.9"] });
const requests = await network.requests();
await network.close();
process.stdout.write(JSON.stringify({ namespace: network.namespace, requests }));`;
      const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
        cwd: resolve(import.meta.dirname, "../../../.."),
        stdio: ["ignore", "pipe", "inherit"],
      });
      let output = "";
      child.stdout.on("data", (chunk: Buffer) => {
        output += chunk.toString();
      });
      const code = await new Promise((resolvePromise) => child.once("close", resolvePromise));
      expect({ code, output }).toEqual({ code: 0, output: expect.stringContaining('"requests":[]') });
      const { namespace } = JSON.parse(output) as { namespace: string };
      expect(await namespaces()).not.toContain(namespace);
    });

    it("removes the namespace when the test process is killed without closing it", async () => {
      const fixture = resolve(import.meta.dirname, "test-network.ts");
      const script = `import { startTestNetwork } from ${JSON.stringify(fixture)};
const network = await startTestNetwork({ zone: {} });
process.stdout.write(network.namespace + "\\n");
setInterval(() => {}, 1000);`;
      const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
        cwd: resolve(import.meta.dirname, "../../../.."),
        stdio: ["ignore", "pipe", "inherit"],
      });
      const namespace = await new Promise<string>((resolvePromise, reject) => {
        let output = "";
        child.stdout.on("data", (chunk: Buffer) => {
          output += chunk.toString();
          if (output.includes("\n")) resolvePromise(output.trim());
        });
        child.once("exit", (code) => reject(new Error(`the fixture process exited early (${code})`)));
      });
      expect(await namespaces()).toContain(namespace);
      child.kill("SIGKILL");
      await waitFor(`${namespace} to be removed`, async () =>
        (await namespaces()).includes(namespace) ? undefined : true,
      );
    });
  },
);
