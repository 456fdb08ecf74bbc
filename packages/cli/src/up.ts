import { parseArgs } from "node:util";
import { isPolydevError } from "@polydev/core";
import { startFakeProviders } from "@polydev/fake-providers";
import type { ConfigInput, RunningServer } from "@polydev/server";
import { configFromEnv, createLogger, parseConfig, startServer } from "@polydev/server";
import { DRIVERS } from "./drivers.js";

export const UP_HELP = `Usage: polydev up [--port N] [--host H] [--data-dir DIR]

Starts the Polydev server on embedded defaults (SQLite, in-process events, bubblewrap sandboxes).

Options (environment variable, default):
  --port N          POLYDEV_PORT, 7420
  --host H          POLYDEV_HOST, 127.0.0.1
  --data-dir DIR    POLYDEV_DATA_DIR, ~/.polydev
  --demo            fake providers on loopback instead of the real APIs: try every agent with no keys
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
      demo: { type: "boolean" },
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
  // Demo mode: fake providers on loopback stand in for the real APIs, so every agent can be
  // tried end to end with no keys. Nothing leaves the machine.
  const demo = values.demo ? await startFakeProviders() : undefined;
  if (demo) input.upstreams = { anthropic: demo.url, openai: demo.url, gemini: demo.url };
  const config = parseConfig(input);
  const drivers = DRIVERS;
  const log = createLogger(config.logLevel);
  const server = await startServer(config, { drivers, log });
  if (demo) await storeDemoCredentials(server);

  const lines = [
    `Polydev is running at ${server.url}`,
    `  dashboard: ${server.url}/ (sign in with the admin API key, or as "admin" with the password set by POLYDEV_ADMIN_PASSWORD)`,
    `  API reference: ${server.url}/api-reference`,
    ...(server.previewUrl
      ? [`  previews (sandbox web servers, opened with signed links): ${server.previewUrl}`]
      : []),
    `  data directory: ${config.dataDir}`,
  ];
  if (server.firstAdminKey) {
    lines.push(
      `  admin API key (shown once; also saved in ${server.firstAdminKey.keyFile}):`,
      `    ${server.firstAdminKey.apiKey}`,
    );
  } else {
    lines.push(`  admin API key: see ${config.dataDir}/admin-api-key`);
  }
  const auth = `-H "Authorization: Bearer $(cat ${config.dataDir}/admin-api-key)"`;
  if (demo) {
    lines.push(
      `  demo mode: agents talk to fake providers at ${demo.url}; the admin has demo credentials`,
      `  try: curl ${auth} -H 'content-type: application/json' ${server.url}/v1/runs -d '{"agent":"claude","prompt":"create file hello.txt"}'`,
      `  or in the dashboard: Runs, prompt "create file hello.txt" (the fakes act on that prompt)`,
    );
  } else {
    lines.push(`  try: curl ${auth} ${server.url}/v1/sandboxes`);
  }
  process.stdout.write(`${lines.join("\n")}\n`);

  await new Promise<void>((resolve) => {
    const stop = (): void => {
      log.info("shutting down; sandboxes keep running and are re-adopted on the next start");
      server
        .close()
        .then(() => demo?.close())
        .then(resolve, resolve);
    };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  return 0;
}

/** The admin gets a demo key per provider; the fakes accept any key. */
async function storeDemoCredentials(server: RunningServer): Promise<void> {
  const admin = await server.store.users.getByName("admin");
  if (!admin) return;
  for (const provider of ["anthropic", "openai", "gemini"] as const) {
    if (await server.store.credentials.get(admin.id, provider)) continue;
    await server.credentials.putApiKey(admin.id, provider, `demo-${provider}-key`);
  }
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
