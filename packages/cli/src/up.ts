import { parseArgs } from "node:util";
import { isPolydevError } from "@polydev/core";
import type { ConfigInput } from "@polydev/server";
import { configFromEnv, createLogger, parseConfig, startServer } from "@polydev/server";
import { DRIVERS } from "./drivers.js";

export const UP_HELP = `Usage: polydev up [--port N] [--host H] [--data-dir DIR]

Starts the Polydev server on embedded defaults (SQLite, in-process events, bubblewrap sandboxes).

Options (environment variable, default):
  --port N          POLYDEV_PORT, 7420
  --host H          POLYDEV_HOST, 127.0.0.1
  --data-dir DIR    POLYDEV_DATA_DIR, ~/.polydev
  -h, --help        show this help

Also read: POLYDEV_ADMIN_KEY (the admin's API key on first start), POLYDEV_LOG_LEVEL (info).
`;

export async function up(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: "string" },
      host: { type: "string" },
      "data-dir": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(UP_HELP);
    return 0;
  }
  const input: ConfigInput = configFromEnv(env);
  if (values.port !== undefined) input.port = Number(values.port);
  if (values.host !== undefined) input.host = values.host;
  if (values["data-dir"] !== undefined) input.dataDir = values["data-dir"];
  const config = parseConfig(input);
  const log = createLogger(config.logLevel);
  const server = await startServer(config, { drivers: DRIVERS, log });

  const lines = [`Polydev is running at ${server.url}`, `  data directory: ${config.dataDir}`];
  if (server.firstAdminKey) {
    lines.push(
      `  admin API key (shown once; also saved in ${server.firstAdminKey.keyFile}):`,
      `    ${server.firstAdminKey.apiKey}`,
    );
  } else {
    lines.push(`  admin API key: see ${config.dataDir}/admin-api-key`);
  }
  lines.push(
    `  try: curl -H "Authorization: Bearer $(cat ${config.dataDir}/admin-api-key)" ${server.url}/v1/sandboxes`,
  );
  process.stdout.write(`${lines.join("\n")}\n`);

  await new Promise<void>((resolve) => {
    const stop = (): void => {
      log.info("shutting down; sandboxes keep running and are re-adopted on the next start");
      server.close().then(resolve, resolve);
    };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  return 0;
}

export function describeStartupError(error: unknown): string {
  if (isPolydevError(error)) return `polydev: ${error.message}`;
  if (error instanceof Error && "code" in error && error.code === "EADDRINUSE") {
    return "polydev: the port is already in use; pick another with --port N";
  }
  if (error instanceof TypeError && "code" in error && String(error.code).startsWith("ERR_PARSE_ARGS")) {
    return `polydev: ${error.message}; see polydev up --help`;
  }
  return `polydev: ${error instanceof Error ? error.message : String(error)}`;
}
