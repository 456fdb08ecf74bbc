/** Host-side instruments for the isolation cases: things a sandbox must not be able to reach. */
import { readFile } from "node:fs/promises";
import type { Socket } from "node:net";
import { createServer } from "node:net";

export interface ProbeServer {
  port: number;
  /** How many connections reached the server so far. */
  connections(): number;
  close(): Promise<void>;
}

/** A TCP server on every host address that counts who got through. */
export async function startProbeServer(host = "0.0.0.0"): Promise<ProbeServer> {
  let count = 0;
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    count += 1;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.end("polydev-probe\n");
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, host, () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("the probe server has no port");
  return {
    port: address.port,
    connections: () => count,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

export async function readHostFile(path: string): Promise<string> {
  return readFile(path, "utf8").catch(() => "");
}
