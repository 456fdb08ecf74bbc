/**
 * Servers that several test files share within one Vitest run (Postgres, Redis): the run's
 * global setup (scripts/vitest-test-backends.ts) serves a broker on a unix socket, which starts a
 * backend on the first ask and stops it when the run ends. A file run outside that setup gets
 * `undefined` and starts its own.
 */
import { request } from "node:http";
import { inject } from "vitest";

declare module "vitest" {
  export interface ProvidedContext {
    /** The broker's socket path; set by the global setup. */
    polydevTestBroker: string | undefined;
  }
}

/** The description the broker's starter for `name` returned (the same for every caller). */
export async function askTestBroker<T>(name: string): Promise<T | undefined> {
  const socketPath = inject("polydevTestBroker");
  if (!socketPath) return undefined;
  return new Promise<T>((resolve, reject) => {
    const req = request(
      { socketPath, path: `/backends/${encodeURIComponent(name)}`, method: "POST" },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          body += chunk;
        });
        res.on("error", reject);
        res.on("end", () => {
          if (res.statusCode === 200) resolve(JSON.parse(body) as T);
          else reject(new Error(`the test broker could not start ${name}: ${body}`));
        });
      },
    );
    req.on("error", reject);
    req.end();
  });
}
