/**
 * `polydev port ls | open`: the ports listening in a sandbox, and a signed preview link that
 * opens one in a browser (on the server's preview origin, never the dashboard's).
 */
import { spawn } from "node:child_process";
import { connect } from "./config.js";
import { EXIT_OK, EXIT_USAGE, formatTable, parseCommand, runCommand, UsageError } from "./io.js";

export const PORT_HELP = `Usage: polydev port <command> [options]

A sandbox's listening TCP ports and their preview URLs. Previews reach the port through the
sandbox's agent channel, so they work with --network none too.

Commands:
  ls SANDBOX          list the ports listening in the sandbox, with their process
  open SANDBOX PORT   print a signed link that opens the port in a browser

Run 'polydev port <command> --help' for a command's options.
`;

const LS_HELP = `Usage: polydev port ls [--json] SANDBOX

Lists the TCP ports listening in the sandbox: port, address, process.
`;

const OPEN_HELP = `Usage: polydev port open [options] SANDBOX PORT

Prints a short-lived signed link that opens the port in a browser, on the server's preview
origin (the link sets a cookie for that preview only, then shows the page).

Options:
  --share             a link anyone holding it may open, until it expires
  --expires SECONDS   the link's life (private: 300 by default, at most 900; share: 3600)
  --browser           also open the link in this machine's browser (xdg-open / open)
  --json              print {url, expiresAt, share}

Example:
  polydev port open sbx_123 3000 --browser
`;

export function port(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case "ls":
    case "list":
      return list(rest, env);
    case "open":
      return open(rest, env);
    case undefined:
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(PORT_HELP);
      return Promise.resolve(command === undefined ? EXIT_USAGE : EXIT_OK);
    default:
      process.stderr.write(`polydev: unknown port command "${command}"\n${PORT_HELP}`);
      return Promise.resolve(EXIT_USAGE);
  }
}

function list(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return runCommand("polydev port ls", async () => {
    const parsed = parseCommand(argv, { json: { type: "boolean" } }, LS_HELP);
    if (!parsed) return EXIT_OK;
    const [id, extra] = parsed.positionals;
    if (!id) throw new UsageError("which sandbox? polydev port ls SANDBOX");
    if (extra !== undefined) throw new UsageError(`unexpected argument "${extra}"`);
    const { polydev } = await connect(env);
    const { items } = await polydev.sandboxes.ports.list(id);
    if (parsed.values.json) {
      process.stdout.write(`${JSON.stringify(items)}\n`);
      return EXIT_OK;
    }
    if (items.length === 0) {
      process.stdout.write("No ports listening\n");
      return EXIT_OK;
    }
    process.stdout.write(
      formatTable([
        ["PORT", "ADDRESS", "PROCESS"],
        ...items.map((item) => [
          String(item.port),
          item.address,
          item.process === null ? "-" : `${item.process.name} (${item.process.pid})`,
        ]),
      ]),
    );
    return EXIT_OK;
  });
}

function open(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return runCommand("polydev port open", async () => {
    const parsed = parseCommand(
      argv,
      {
        share: { type: "boolean" },
        expires: { type: "string" },
        browser: { type: "boolean" },
        json: { type: "boolean" },
      },
      OPEN_HELP,
    );
    if (!parsed) return EXIT_OK;
    const [id, portText, extra] = parsed.positionals;
    if (!id || !portText) throw new UsageError("which sandbox and port? polydev port open SANDBOX PORT");
    if (extra !== undefined) throw new UsageError(`unexpected argument "${extra}"`);
    const portNumber = Number(portText);
    if (!/^\d{1,5}$/.test(portText) || portNumber < 1 || portNumber > 65535)
      throw new UsageError(`PORT is a TCP port number, 1-65535 (got "${portText}")`);
    const { values } = parsed;
    let expiresIn: number | undefined;
    if (values.expires !== undefined) {
      expiresIn = Number(values.expires);
      if (!Number.isInteger(expiresIn) || expiresIn < 10)
        throw new UsageError(`--expires takes whole seconds, at least 10 (got "${values.expires}")`);
    }
    const { polydev } = await connect(env);
    const link = await polydev.sandboxes.ports.previewLink(id, portNumber, {
      ...(values.share ? { share: true } : {}),
      ...(expiresIn === undefined ? {} : { expiresIn }),
    });
    process.stdout.write(
      values.json
        ? `${JSON.stringify(link)}\n`
        : `${link.url}\n(expires ${link.expiresAt}${link.share ? ", share link" : ""})\n`,
    );
    if (values.browser) openInBrowser(link.url);
    return EXIT_OK;
  });
}

/** The URL is one argv entry of the platform's opener: no shell sees it. */
function openInBrowser(url: string): void {
  const opener = process.platform === "darwin" ? "open" : "xdg-open";
  const child = spawn(opener, [url], { stdio: "ignore", detached: true });
  child.on("error", () =>
    process.stderr.write(`polydev: could not run ${opener}; open the link above yourself\n`),
  );
  child.unref();
}
