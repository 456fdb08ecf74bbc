import { type ChildProcess, execFile, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export const REGISTRY_BINARY = "/usr/bin/docker-registry";
export const SKOPEO_BINARY = "/usr/bin/skopeo";

/** Why the real-registry tests cannot run here, or null when they can. */
export function realRegistryUnavailable(): string | null {
  if (!existsSync(REGISTRY_BINARY)) return `${REGISTRY_BINARY} is absent (apt-get install docker-registry)`;
  if (!existsSync(SKOPEO_BINARY)) return `${SKOPEO_BINARY} is absent (apt-get install skopeo)`;
  return null;
}

export interface RealRegistry {
  /** `127.0.0.1:<port>` */
  host: string;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Starts Debian's docker-registry on a random loopback port with a temp storage directory. */
export async function startRealRegistry(): Promise<RealRegistry> {
  const dir = await mkdtemp(join(tmpdir(), "polydev-registry-"));
  const storage = join(dir, "storage");
  await mkdir(storage);
  for (let attempt = 0; ; attempt += 1) {
    const port = await freePort();
    const config = join(dir, "config.yml");
    await writeFile(
      config,
      [
        "version: 0.1",
        "log:",
        "  level: error",
        "storage:",
        "  filesystem:",
        `    rootdirectory: ${storage}`,
        "  delete:",
        "    enabled: true",
        "http:",
        `  addr: 127.0.0.1:${port}`,
        "",
      ].join("\n"),
    );
    const child: ChildProcess = spawn(REGISTRY_BINARY, ["serve", config], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr?.on("data", (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-4000);
    });
    const host = `127.0.0.1:${port}`;
    const stop = async (): Promise<void> => {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once("exit", resolve));
        child.kill("SIGTERM");
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    };
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && child.exitCode === null) {
      try {
        const response = await fetch(`http://${host}/v2/`);
        await response.body?.cancel();
        if (response.ok) return { host, stop };
      } catch {
        // not listening yet
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    if (child.exitCode === null) child.kill("SIGKILL");
    if (attempt >= 2) {
      await rm(dir, { recursive: true, force: true });
      throw new Error(`docker-registry did not start: ${stderr}`);
    }
  }
}

/** `skopeo copy` of an OCI layout directory into the registry (plain http). */
export async function pushOciLayout(layoutDir: string, destination: string): Promise<void> {
  const policy = join(layoutDir, "..", "policy.json");
  await writeFile(policy, JSON.stringify({ default: [{ type: "insecureAcceptAnything" }] }));
  await run(
    SKOPEO_BINARY,
    ["--policy", policy, "copy", "--dest-tls-verify=false", `oci:${layoutDir}`, `docker://${destination}`],
    { timeout: 60_000 },
  );
}

export const sha256 = (data: Buffer | string): string =>
  `sha256:${createHash("sha256").update(data).digest("hex")}`;

export interface FakeRegistry {
  host: string;
  /** Every request's method and URL, in order. */
  requests: { url: string; authorization?: string }[];
  close(): Promise<void>;
}

export type FakeHandler = (request: IncomingMessage, response: ServerResponse, host: string) => void;

/** A tiny http server on loopback standing in for a registry (that may lie). */
export async function startFakeRegistry(handler: FakeHandler): Promise<FakeRegistry> {
  const requests: FakeRegistry["requests"] = [];
  const sockets = new Set<import("node:net").Socket>();
  let host = "";
  const server: Server = createServer((request, response) => {
    requests.push({ url: request.url ?? "", authorization: request.headers.authorization });
    response.on("error", () => {});
    handler(request, response, host);
  });
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    host,
    requests,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Serves manifests (by tag or digest) and blobs from memory, like a registry would. */
export function serveImage(
  content: { manifests: Map<string, { body: Buffer; mediaType: string }>; blobs: Map<string, Buffer> },
  repository: string,
): (request: IncomingMessage, response: ServerResponse) => boolean {
  return (request, response) => {
    const url = request.url ?? "";
    if (url === "/v2/") {
      response.end("{}");
      return true;
    }
    const manifest = new RegExp(`^/v2/${repository}/manifests/([^/?]+)$`).exec(url);
    if (manifest) {
      const found = content.manifests.get(manifest[1] ?? "");
      if (!found) {
        response.writeHead(404, { "content-type": "application/json" });
        response.end(JSON.stringify({ errors: [{ code: "MANIFEST_UNKNOWN", message: "manifest unknown" }] }));
        return true;
      }
      response.writeHead(200, {
        "content-type": found.mediaType,
        "docker-content-digest": sha256(found.body),
      });
      response.end(found.body);
      return true;
    }
    const blob = new RegExp(`^/v2/${repository}/blobs/(sha256:[0-9a-f]{64})$`).exec(url);
    if (blob) {
      const found = content.blobs.get(blob[1] ?? "");
      if (!found) {
        response.writeHead(404);
        response.end();
        return true;
      }
      response.writeHead(200, { "content-type": "application/octet-stream" });
      response.end(found);
      return true;
    }
    return false;
  };
}
