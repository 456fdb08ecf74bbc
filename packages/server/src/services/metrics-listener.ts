/**
 * The optional unauthenticated metrics listener (`metricsListen`): GET /metrics and nothing
 * else, for a Prometheus on a private network. It serves the same registry as the API's
 * admin-only /metrics and takes no input beyond the request line.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "pino";
import type { Metrics } from "./metrics.js";

export async function serveMetrics(
  listen: string,
  metrics: Metrics,
  log: Logger,
): Promise<{ url: string; close(): Promise<void> }> {
  const split = listen.lastIndexOf(":");
  const host = listen.slice(0, split).replace(/^\[(.*)\]$/, "$1");
  const port = Number(listen.slice(split + 1));
  const server = createServer((request, response) => {
    const path = (request.url ?? "").split("?")[0];
    if (request.method !== "GET" || path !== "/metrics") {
      response.writeHead(404, { "content-type": "text/plain" }).end("only GET /metrics is served here\n");
      return;
    }
    metrics.text().then(
      (text) => response.writeHead(200, { "content-type": metrics.contentType }).end(text),
      (error: unknown) => {
        log.warn({ err: error }, "metrics could not be collected");
        response.writeHead(500, { "content-type": "text/plain" }).end("metrics could not be collected\n");
      },
    );
  });
  // Scrapers keep connections open; close must not wait for them.
  server.keepAliveTimeout = 5_000;
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const shownHost = address.address.includes(":") ? `[${address.address}]` : address.address;
  log.info({ address: `${shownHost}:${address.port}` }, "metrics listener ready");
  return {
    url: `http://${shownHost}:${address.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
