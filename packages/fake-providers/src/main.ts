#!/usr/bin/env node
/**
 * Runs the fake providers standalone: `node dist/main.js --port 4010 [--host 127.0.0.1] [--log]`.
 * Prints the base URL on stdout once listening, so scripts can read the first line.
 */
import { parseArgs } from "node:util";
import { startFakeProviders } from "./server.js";

const { values } = parseArgs({
  options: {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "4010" },
    log: { type: "boolean", default: false },
    help: { type: "boolean", default: false },
  },
});

if (values.help) {
  process.stdout.write(
    "Usage: polydev-fake-providers [--host 127.0.0.1] [--port 4010] [--log]\n" +
      "Serves fake Anthropic, OpenAI and Gemini APIs with the default script (see README).\n",
  );
  process.exit(0);
}

const port = Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write(`--port must be an integer from 0 to 65535, got ${values.port}\n`);
  process.exit(2);
}

const fake = await startFakeProviders({
  host: values.host,
  port,
  ...(values.log
    ? {
        onRequest: (request) =>
          process.stderr.write(
            `${request.receivedAt.toISOString()} ${request.provider} ${request.method} ${request.path}\n`,
          ),
      }
    : {}),
});
process.stdout.write(`${fake.url}\n`);

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    fake.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  });
}
