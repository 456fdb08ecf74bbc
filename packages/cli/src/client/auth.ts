/** `polydev login`, `logout`, `whoami`: which server and key the other commands use. */
import {
  clientFor,
  configPath,
  connect,
  DEFAULT_URL,
  normalizeUrl,
  readConfig,
  removeConfig,
  writeConfig,
} from "./config.js";
import { ask, EXIT_OK, parseCommand, runCommand, UsageError, withSpinner } from "./io.js";

export const LOGIN_HELP = `Usage: polydev login [--url URL] [--api-key KEY]

Checks the key against the server (GET /v1/me) and saves both in
$XDG_CONFIG_HOME/polydev/config.json (default ~/.config/polydev/config.json, mode 600).
Without --url or --api-key it uses POLYDEV_URL / POLYDEV_API_KEY, else asks on the terminal
(the key is not echoed). POLYDEV_URL and POLYDEV_API_KEY also override the saved file for every
other command.

Example:
  polydev login --url http://127.0.0.1:7420 --api-key pdk_…
`;

export const LOGOUT_HELP = `Usage: polydev logout

Removes the saved login (the key itself stays valid on the server).
`;

export const WHOAMI_HELP = `Usage: polydev whoami [--json]

Prints the user the current key belongs to, and the server.
`;

export function login(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return runCommand("polydev login", async () => {
    const parsed = parseCommand(argv, { url: { type: "string" }, "api-key": { type: "string" } }, LOGIN_HELP);
    if (!parsed) return EXIT_OK;
    if (parsed.positionals.length > 0) throw new UsageError(`unexpected argument "${parsed.positionals[0]}"`);
    const saved = await readConfig(env).catch(() => undefined);
    const suggested = saved?.url ?? DEFAULT_URL;
    const url = normalizeUrl(
      parsed.values.url ?? (env.POLYDEV_URL || (await ask(`Server URL [${suggested}]: `)) || suggested),
    );
    if (!/^https?:\/\/[^/]/.test(url))
      throw new UsageError(`--url must start with http:// or https:// (got "${url}")`);
    const apiKey =
      parsed.values["api-key"] ?? (env.POLYDEV_API_KEY || (await ask("API key: ", { hidden: true })));
    if (!apiKey)
      throw new UsageError("an API key is needed (--api-key, POLYDEV_API_KEY, or type it when asked)");
    const me = await withSpinner(`Checking the key with ${url}`, () => clientFor(url, apiKey).me());
    const path = await writeConfig(env, { url, apiKey });
    process.stdout.write(`Logged in to ${url} as ${me.name} (${me.role}); saved in ${path}\n`);
    return EXIT_OK;
  });
}

export function logout(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return runCommand("polydev logout", async () => {
    const parsed = parseCommand(argv, {}, LOGOUT_HELP);
    if (!parsed) return EXIT_OK;
    if (parsed.positionals.length > 0) throw new UsageError(`unexpected argument "${parsed.positionals[0]}"`);
    const removed = await removeConfig(env);
    process.stdout.write(removed ? `Logged out (removed ${configPath(env)})\n` : "Not logged in\n");
    return EXIT_OK;
  });
}

export function whoami(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return runCommand("polydev whoami", async () => {
    const parsed = parseCommand(argv, { json: { type: "boolean" } }, WHOAMI_HELP);
    if (!parsed) return EXIT_OK;
    if (parsed.positionals.length > 0) throw new UsageError(`unexpected argument "${parsed.positionals[0]}"`);
    const { polydev, url } = await connect(env);
    const me = await polydev.me();
    if (parsed.values.json) process.stdout.write(`${JSON.stringify({ ...me, url })}\n`);
    else process.stdout.write(`${me.name} (${me.role}) on ${url}\n`);
    return EXIT_OK;
  });
}
