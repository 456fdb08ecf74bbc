/** `polydev webhook add | ls | rm | deliveries` and `polydev mcp add | ls | rm`. */
import { connect } from "./config.js";
import { EXIT_OK, formatAge, formatTable, parseCommand, reportError, runCommand, UsageError } from "./io.js";

export const WEBHOOK_HELP = `Usage: polydev webhook <command> [options]

Commands:
  add URL [--events E1,E2]   register an endpoint; prints its signing secret ONCE
                             (events: run.finished, run.failed, group.finished, group.failed; default all)
  ls [--json]                your webhooks
  rm ID                      delete a webhook and its delivery log
  deliveries ID [--json]     the webhook's deliveries: state, attempts, last answer

Deliveries are signed (header Polydev-Signature); see docs/webhooks.md to verify them.
`;

export const MCP_HELP = `Usage: polydev mcp <command> [options]

Commands:
  add NAME -- COMMAND [ARGS...] [--env K=V ...]
                             a stdio MCP server, started by the agent inside the run's sandbox
  add NAME --url URL [--sse] [--header 'Name: value' ...]
                             an http (or sse) MCP server the agent reaches from the sandbox
  ls [--json]                your MCP servers (secret values are never shown)
  rm NAME                    delete one

Every run's agent gets your MCP servers unless the run says otherwise (mcpServers on POST /v1/runs).
Env and header values are stored encrypted.
`;

function unknown(kind: string, command: string | undefined): Promise<number> {
  return Promise.resolve(
    reportError(
      new UsageError(command ? `unknown ${kind} command "${command}"` : `which ${kind} command?`),
      `polydev ${kind}`,
    ),
  );
}

function help(text: string): Promise<number> {
  process.stdout.write(text);
  return Promise.resolve(EXIT_OK);
}

export function webhook(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case "add":
      return runCommand("polydev webhook add", async () => {
        const parsed = parseCommand(rest, { events: { type: "string" } }, WEBHOOK_HELP);
        if (!parsed) return EXIT_OK;
        const [url, extra] = parsed.positionals;
        if (!url) throw new UsageError("which URL?");
        if (extra !== undefined) throw new UsageError(`unexpected argument "${extra}"`);
        const events = parsed.values.events
          ?.split(",")
          .map((e) => e.trim())
          .filter(Boolean);
        const { polydev } = await connect(env);
        const created = await polydev.webhooks.create({
          url,
          ...(events
            ? { events: events as NonNullable<Parameters<typeof polydev.webhooks.create>[0]["events"]> }
            : {}),
        });
        process.stdout.write(
          `Registered webhook ${created.id} for ${created.events.join(", ")}\n` +
            `Signing secret (shown only now; store it): ${created.secret}\n`,
        );
        return EXIT_OK;
      });
    case "ls":
    case "list":
      return runCommand("polydev webhook ls", async () => {
        const parsed = parseCommand(rest, { json: { type: "boolean" } }, WEBHOOK_HELP);
        if (!parsed) return EXIT_OK;
        const { polydev } = await connect(env);
        const { items } = await polydev.webhooks.list();
        if (parsed.values.json) process.stdout.write(`${JSON.stringify(items)}\n`);
        else if (items.length === 0) process.stdout.write("No webhooks (add one: polydev webhook add URL)\n");
        else
          process.stdout.write(
            formatTable([
              ["ID", "EVENTS", "CREATED", "URL"],
              ...items.map((w) => [w.id, w.events.join(","), `${formatAge(w.createdAt)} ago`, w.url]),
            ]),
          );
        return EXIT_OK;
      });
    case "rm":
    case "remove":
      return runCommand("polydev webhook rm", async () => {
        const parsed = parseCommand(rest, {}, WEBHOOK_HELP);
        if (!parsed) return EXIT_OK;
        const [id] = parsed.positionals;
        if (!id) throw new UsageError("which webhook id?");
        const { polydev } = await connect(env);
        await polydev.webhooks.remove(id);
        process.stdout.write(`Deleted webhook ${id}\n`);
        return EXIT_OK;
      });
    case "deliveries":
      return runCommand("polydev webhook deliveries", async () => {
        const parsed = parseCommand(rest, { json: { type: "boolean" } }, WEBHOOK_HELP);
        if (!parsed) return EXIT_OK;
        const [id] = parsed.positionals;
        if (!id) throw new UsageError("which webhook id?");
        const { polydev } = await connect(env);
        const { items } = await polydev.webhooks.deliveries(id);
        if (parsed.values.json) process.stdout.write(`${JSON.stringify(items)}\n`);
        else if (items.length === 0) process.stdout.write("No deliveries yet\n");
        else
          process.stdout.write(
            formatTable([
              ["ID", "EVENT", "STATE", "ATTEMPTS", "LAST", "WHEN"],
              ...items.map((d) => [
                d.id,
                d.event,
                d.state,
                String(d.attempts),
                d.lastStatus === null ? (d.lastError ?? "-") : String(d.lastStatus),
                `${formatAge(d.updatedAt)} ago`,
              ]),
            ]),
          );
        return EXIT_OK;
      });
    case "--help":
    case "-h":
    case "help":
      return help(WEBHOOK_HELP);
    default:
      return unknown("webhook", command);
  }
}

/** `K=V` pairs (or `Name: value` headers) into a record; a malformed one is a usage error. */
function pairs(
  list: string[] | undefined,
  separator: string,
  what: string,
): Record<string, string> | undefined {
  if (!list || list.length === 0) return undefined;
  const out: Record<string, string> = {};
  for (const entry of list) {
    const at = entry.indexOf(separator);
    if (at <= 0)
      throw new UsageError(`${what} "${entry}" is not ${separator === "=" ? "NAME=value" : "'Name: value'"}`);
    out[entry.slice(0, at).trim()] = entry.slice(at + separator.length).trim();
  }
  return out;
}

export function mcp(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case "add":
      return runCommand("polydev mcp add", async () => {
        // Everything after `--` is the server's command line, options included.
        const dashes = rest.indexOf("--");
        const own = dashes === -1 ? rest : rest.slice(0, dashes);
        const commandLine = dashes === -1 ? [] : rest.slice(dashes + 1);
        const parsed = parseCommand(
          own,
          {
            url: { type: "string" },
            sse: { type: "boolean" },
            env: { type: "string", multiple: true },
            header: { type: "string", multiple: true },
          },
          MCP_HELP,
        );
        if (!parsed) return EXIT_OK;
        const [name, extra] = parsed.positionals;
        if (!name) throw new UsageError("which name?");
        if (extra !== undefined)
          throw new UsageError(`unexpected argument "${extra}" (put the command after --)`);
        const [program, ...args] = commandLine;
        if ((program === undefined) === (parsed.values.url === undefined))
          throw new UsageError("give either -- COMMAND [ARGS...] or --url URL");
        const envValues = pairs(parsed.values.env, "=", "--env");
        const headers = pairs(parsed.values.header, ":", "--header");
        const { polydev } = await connect(env);
        const created = await polydev.mcpServers.create(
          program !== undefined
            ? { name, command: program, args, ...(envValues ? { env: envValues } : {}) }
            : {
                name,
                url: parsed.values.url ?? "",
                transport: parsed.values.sse ? "sse" : "http",
                ...(headers ? { headers } : {}),
              },
        );
        process.stdout.write(`Added MCP server ${created.name} (${created.transport})\n`);
        return EXIT_OK;
      });
    case "ls":
    case "list":
      return runCommand("polydev mcp ls", async () => {
        const parsed = parseCommand(rest, { json: { type: "boolean" } }, MCP_HELP);
        if (!parsed) return EXIT_OK;
        const { polydev } = await connect(env);
        const { items } = await polydev.mcpServers.list();
        if (parsed.values.json) process.stdout.write(`${JSON.stringify(items)}\n`);
        else if (items.length === 0)
          process.stdout.write("No MCP servers (add one: polydev mcp add --help)\n");
        else
          process.stdout.write(
            formatTable([
              ["NAME", "TRANSPORT", "SECRETS", "TARGET"],
              ...items.map((m) => [
                m.name,
                m.transport,
                [...m.env, ...m.headers].join(",") || "-",
                m.url ?? [m.command ?? "", ...m.args].join(" "),
              ]),
            ]),
          );
        return EXIT_OK;
      });
    case "rm":
    case "remove":
      return runCommand("polydev mcp rm", async () => {
        const parsed = parseCommand(rest, {}, MCP_HELP);
        if (!parsed) return EXIT_OK;
        const [name] = parsed.positionals;
        if (!name) throw new UsageError("which MCP server?");
        const { polydev } = await connect(env);
        await polydev.mcpServers.remove(name);
        process.stdout.write(`Deleted MCP server ${name}\n`);
        return EXIT_OK;
      });
    case "--help":
    case "-h":
    case "help":
      return help(MCP_HELP);
    default:
      return unknown("mcp", command);
  }
}
