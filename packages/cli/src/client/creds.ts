/** `polydev creds add | ls | rm | login`: the provider credentials your agents use. */
import type { Login, LoginProvider, Polydev } from "@polydev/sdk";
import { connect } from "./config.js";
import {
  ask,
  EXIT_FAILED,
  EXIT_OK,
  formatAge,
  formatTable,
  parseCommand,
  readStdin,
  reportError,
  runCommand,
  UsageError,
  withSpinner,
} from "./io.js";

const API_KEY_PROVIDERS = ["anthropic", "openai", "gemini"] as const;
type ApiKeyProvider = (typeof API_KEY_PROVIDERS)[number];
const LOGIN_PROVIDERS: readonly LoginProvider[] = ["claude", "codex", "gemini"];

export const CREDS_HELP = `Usage: polydev creds <command> [options]

Commands:
  add PROVIDER      store an API key (anthropic, openai, gemini), encrypted on the server
  ls                list your credentials (never their secrets)
  rm PROVIDER       delete a credential
  login PROVIDER    sign in with a subscription through the provider's own CLI (claude, codex, gemini)

Run 'polydev creds <command> --help' for a command's options.
`;

const ADD_HELP = `Usage: polydev creds add PROVIDER [--api-key KEY]

Stores an API key for PROVIDER (anthropic, openai, gemini). Without --api-key the key is read
from stdin (asked for, not echoed, on a terminal), which keeps it out of your shell history.

Example:
  printenv ANTHROPIC_API_KEY | polydev creds add anthropic
`;

const LS_HELP = `Usage: polydev creds ls [--json]

Lists your credentials: provider, kind, whether the last check found them valid, when last used.
`;

const RM_HELP = `Usage: polydev creds rm PROVIDER

Deletes your credential for PROVIDER.
`;

const LOGIN_HELP = `Usage: polydev creds login PROVIDER [--sandbox ID]

Runs PROVIDER's own CLI login (claude, codex, gemini) in a sandbox: open the printed URL in your
browser, then paste the code it shows (or the localhost URL the browser ended on) when asked.
The resulting credential is stored encrypted like an API key. Ctrl-C cancels the login.

Options:
  --sandbox ID   log in inside this sandbox (default: a temporary one with egress)
`;

export function creds(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case "add":
      return add(rest, env);
    case "ls":
    case "list":
      return list(rest, env);
    case "rm":
    case "remove":
      return remove(rest, env);
    case "login":
      return login(rest, env);
    case "--help":
    case "-h":
    case "help":
      process.stdout.write(CREDS_HELP);
      return Promise.resolve(EXIT_OK);
    default:
      return Promise.resolve(
        reportError(
          new UsageError(command ? `unknown creds command "${command}"` : "which creds command?"),
          "polydev creds",
        ),
      );
  }
}

function apiKeyProvider(positionals: string[]): ApiKeyProvider {
  const [provider, extra] = positionals;
  if (!provider) throw new UsageError(`which provider? one of ${API_KEY_PROVIDERS.join(", ")}`);
  if (extra !== undefined) throw new UsageError(`unexpected argument "${extra}"`);
  if (!(API_KEY_PROVIDERS as readonly string[]).includes(provider))
    throw new UsageError(`unknown provider "${provider}"; choose from ${API_KEY_PROVIDERS.join(", ")}`);
  return provider as ApiKeyProvider;
}

function add(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return runCommand("polydev creds add", async () => {
    const parsed = parseCommand(argv, { "api-key": { type: "string" } }, ADD_HELP);
    if (!parsed) return EXIT_OK;
    const provider = apiKeyProvider(parsed.positionals);
    const apiKey = (
      parsed.values["api-key"] ??
      (process.stdin.isTTY ? await ask(`${provider} API key: `, { hidden: true }) : await readStdin())
    ).trim();
    if (!apiKey) throw new UsageError("the API key is empty (pass --api-key or pipe it on stdin)");
    const { polydev } = await connect(env);
    await withSpinner(`Storing the ${provider} key`, () => polydev.credentials.put(provider, apiKey));
    process.stdout.write(`Stored the ${provider} API key\n`);
    return EXIT_OK;
  });
}

function list(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return runCommand("polydev creds ls", async () => {
    const parsed = parseCommand(argv, { json: { type: "boolean" } }, LS_HELP);
    if (!parsed) return EXIT_OK;
    if (parsed.positionals.length > 0) throw new UsageError(`unexpected argument "${parsed.positionals[0]}"`);
    const { polydev } = await connect(env);
    const { items } = await polydev.credentials.list();
    if (parsed.values.json) {
      process.stdout.write(`${JSON.stringify(items)}\n`);
      return EXIT_OK;
    }
    if (items.length === 0) {
      process.stdout.write("No credentials (add one: polydev creds add anthropic)\n");
      return EXIT_OK;
    }
    const rows = [["PROVIDER", "KIND", "VALID", "LAST USED", "UPDATED"]];
    for (const c of items)
      rows.push([
        c.provider,
        c.kind,
        c.valid === null ? "unchecked" : c.valid ? "yes" : "no",
        c.lastUsedAt ? `${formatAge(c.lastUsedAt)} ago` : "never",
        `${formatAge(c.updatedAt)} ago`,
      ]);
    process.stdout.write(formatTable(rows));
    return EXIT_OK;
  });
}

function remove(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return runCommand("polydev creds rm", async () => {
    const parsed = parseCommand(argv, {}, RM_HELP);
    if (!parsed) return EXIT_OK;
    const provider = apiKeyProvider(parsed.positionals);
    const { polydev } = await connect(env);
    await polydev.credentials.remove(provider);
    process.stdout.write(`Removed the ${provider} credential\n`);
    return EXIT_OK;
  });
}

function login(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return runCommand("polydev creds login", async () => {
    const parsed = parseCommand(argv, { sandbox: { type: "string" } }, LOGIN_HELP);
    if (!parsed) return EXIT_OK;
    const [provider, extra] = parsed.positionals;
    if (!provider || !(LOGIN_PROVIDERS as readonly string[]).includes(provider))
      throw new UsageError(
        `${provider ? `unknown provider "${provider}"` : "which provider?"}; choose from ${LOGIN_PROVIDERS.join(", ")}`,
      );
    if (extra !== undefined) throw new UsageError(`unexpected argument "${extra}"`);
    const { polydev } = await connect(env);
    const started = await withSpinner(`Starting the ${provider} login`, () =>
      polydev.logins.start(
        provider as LoginProvider,
        parsed.values.sandbox !== undefined ? { sandboxId: parsed.values.sandbox } : {},
      ),
    );
    const controller = new AbortController();
    const onInterrupt = (): void => {
      controller.abort();
      polydev.logins.cancel(started.id).catch(() => undefined);
    };
    process.once("SIGINT", onInterrupt);
    try {
      return await finishLogin(polydev, started, controller.signal);
    } catch (error) {
      if (controller.signal.aborted) {
        process.stderr.write("\nLogin cancelled\n");
        return 130;
      }
      throw error;
    } finally {
      process.off("SIGINT", onInterrupt);
    }
  });
}

async function finishLogin(polydev: Polydev, started: Login, signal: AbortSignal): Promise<number> {
  let login = started;
  // The server answers once the URL is known, but a flow may still be starting; wait for it.
  if (login.state === "starting")
    for await (const state of polydev.logins.states(login.id, { signal })) {
      login = state;
      if (state.state !== "starting") break;
    }
  if (login.state === "awaiting_user") {
    if (login.url) process.stdout.write(`Open this URL in your browser to sign in:\n\n  ${login.url}\n\n`);
    if (login.userCode) process.stdout.write(`and enter the code: ${login.userCode}\n\n`);
    const answer = await ask(
      login.finish === "code"
        ? "Paste the code the page shows: "
        : "Paste the URL your browser ended on (http://localhost…): ",
    );
    if (!answer) throw new UsageError("nothing was pasted");
    await polydev.logins.submit(
      login.id,
      login.finish === "code" ? { code: answer } : { callbackUrl: answer },
      {
        signal,
      },
    );
  }
  await withSpinner("Finishing the login", async () => {
    for await (const state of polydev.logins.states(login.id, { signal })) login = state;
  });
  if (login.state === "completed") {
    process.stdout.write(`Logged in to ${login.provider}; the credential is stored\n`);
    return EXIT_OK;
  }
  process.stderr.write(
    `polydev: the login ${login.state.replace("_", " ")}${login.reason ? `: ${login.reason}` : ""}\n`,
  );
  return EXIT_FAILED;
}
