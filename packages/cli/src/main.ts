#!/usr/bin/env node
// Commands load on demand: the client commands should not pay for the server's start-up code.

const HELP = `Usage: polydev <command> [options]

Using a server:
  login     save the server URL and your API key (polydev login --help)
  logout    forget the saved login
  whoami    who the current key belongs to
  sandbox   create, list, remove sandboxes; exec in them; attach a shell; their network policy
            and audit log (polydev sandbox --help)
  cp        copy a file into or out of a sandbox (polydev cp --help)
  port      a sandbox's listening ports and their preview links: ls, open (polydev port --help)
  image     build, pull, import, list and remove images (polydev image --help)
  run       run an agent on a prompt and stream what it does (polydev run --help)
  creds     your provider credentials: add, ls, rm, login (polydev creds --help)
  presets   the network presets allow-list sandboxes can use (polydev presets --help)
  keys      your API keys: ls, create, revoke (polydev keys --help)
  events    follow your events: sandbox states, finished runs and logins (polydev events --help)
  webhook   signed notifications when runs and groups end: add, ls, rm, deliveries
  mcp       MCP servers your agents get: add, ls, rm (polydev mcp --help)

Running a server:
  up        start the Polydev server (polydev up --help)
  keys      rotate the vault's master key: polydev keys rotate

Run 'polydev <command> --help' for a command's options; 'polydev --version' prints the version.
Exit codes: 0 ok, 1 the operation failed, 2 usage error; exec and shell pass on the remote exit code.
`;

/** The CLI package's version: package.json sits one level above both src/ and dist/. */
async function cliVersion(): Promise<string> {
  const { readFile } = await import("node:fs/promises");
  const text = await readFile(new URL("../package.json", import.meta.url), "utf8");
  const version: unknown = JSON.parse(text).version;
  return typeof version === "string" ? version : "unknown";
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case "up":
      return (await import("./up.js")).up(rest, process.env);
    case "keys":
      return (await import("./keys.js")).keys(rest, process.env);
    case "login":
      return (await import("./client/auth.js")).login(rest, process.env);
    case "logout":
      return (await import("./client/auth.js")).logout(rest, process.env);
    case "whoami":
      return (await import("./client/auth.js")).whoami(rest, process.env);
    case "sandbox":
    case "sandboxes":
      return (await import("./client/sandbox.js")).sandbox(rest, process.env);
    case "cp":
      return (await import("./client/cp.js")).cp(rest, process.env);
    case "port":
    case "ports":
      return (await import("./client/port.js")).port(rest, process.env);
    case "image":
    case "images":
      return (await import("./client/image.js")).image(rest, process.env);
    case "run":
      return (await import("./client/run.js")).run(rest, process.env);
    case "creds":
      return (await import("./client/creds.js")).creds(rest, process.env);
    case "webhook":
    case "webhooks":
      return (await import("./client/hooks.js")).webhook(rest, process.env);
    case "mcp":
      return (await import("./client/hooks.js")).mcp(rest, process.env);
    case "events":
      return (await import("./client/events.js")).events(rest, process.env);
    case "presets":
      return (await import("./client/network.js")).presets(rest, process.env);
    case "--version":
    case "-V":
    case "version":
      process.stdout.write(`polydev ${await cliVersion()}\n`);
      return 0;
    case undefined:
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(HELP);
      return command === undefined ? 2 : 0;
    default:
      process.stderr.write(`polydev: unknown command "${command}"\n${HELP}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  // Let pending output reach a pipe before leaving.
  (code) => {
    process.exitCode = code;
    process.stdout.write("", () => process.exit(code));
  },
  async (error: unknown) => {
    const { describeStartupError } = await import("./up.js");
    process.stderr.write(`${describeStartupError(error)}\n`);
    process.exit(1);
  },
);
