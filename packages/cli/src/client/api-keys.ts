/** `polydev keys ls | create | revoke`: your own API keys on the server. */
import { connect } from "./config.js";
import { EXIT_OK, formatAge, formatTable, parseCommand, runCommand, UsageError } from "./io.js";

const LS_HELP = `Usage: polydev keys ls [--json]

Lists your API keys: id, name, prefix, created, expires, last used. Secrets are never shown again.
`;

const CREATE_HELP = `Usage: polydev keys create NAME [--expires-in-days N] [--json]

Creates an API key named NAME and prints its secret once: store it now, it is never shown again.

Options:
  --expires-in-days N   the key stops working after N days (default: never)
  --json                print {"key": …, "apiKey": …}
`;

const REVOKE_HELP = `Usage: polydev keys revoke ID

Revokes your API key ID (see polydev keys ls): requests with it answer 401 from now on.
`;

const DAY_MS = 86_400_000;

export function apiKeysCommand(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case "ls":
    case "list":
      return list(rest, env);
    case "create":
      return create(rest, env);
    case "revoke":
    case "rm":
      return revoke(rest, env);
    default:
      throw new Error(`not an API key command: ${command}`);
  }
}

function list(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return runCommand("polydev keys ls", async () => {
    const parsed = parseCommand(argv, { json: { type: "boolean" } }, LS_HELP);
    if (!parsed) return EXIT_OK;
    if (parsed.positionals.length > 0) throw new UsageError(`unexpected argument "${parsed.positionals[0]}"`);
    const { polydev } = await connect(env);
    const { items } = await polydev.keys.list();
    if (parsed.values.json) {
      process.stdout.write(`${JSON.stringify(items)}\n`);
      return EXIT_OK;
    }
    const rows = [["ID", "NAME", "PREFIX", "CREATED", "EXPIRES", "LAST USED"]];
    for (const k of items)
      rows.push([
        k.id,
        k.name,
        `${k.prefix}…`,
        `${formatAge(k.createdAt)} ago`,
        k.expiresAt ?? "never",
        k.lastUsedAt ? `${formatAge(k.lastUsedAt)} ago` : "never",
      ]);
    process.stdout.write(formatTable(rows));
    return EXIT_OK;
  });
}

function create(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return runCommand("polydev keys create", async () => {
    const parsed = parseCommand(
      argv,
      { "expires-in-days": { type: "string" }, json: { type: "boolean" } },
      CREATE_HELP,
    );
    if (!parsed) return EXIT_OK;
    const [name, extra] = parsed.positionals;
    if (!name) throw new UsageError("name the key: polydev keys create NAME");
    if (extra !== undefined) throw new UsageError(`unexpected argument "${extra}"`);
    const days = parsed.values["expires-in-days"];
    let expiresAt: string | undefined;
    if (days !== undefined) {
      const n = Number(days);
      if (!Number.isFinite(n) || n <= 0) throw new UsageError("--expires-in-days must be a positive number");
      expiresAt = new Date(Date.now() + n * DAY_MS).toISOString();
    }
    const { polydev } = await connect(env);
    const created = await polydev.keys.create({ name, ...(expiresAt ? { expiresAt } : {}) });
    if (parsed.values.json) {
      process.stdout.write(`${JSON.stringify(created)}\n`);
      return EXIT_OK;
    }
    process.stderr.write(
      `Created ${created.key.id} (${created.key.name}, expires ${created.key.expiresAt ?? "never"}). ` +
        "Its secret follows; it is not shown again:\n",
    );
    process.stdout.write(`${created.apiKey}\n`);
    return EXIT_OK;
  });
}

function revoke(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return runCommand("polydev keys revoke", async () => {
    const parsed = parseCommand(argv, {}, REVOKE_HELP);
    if (!parsed) return EXIT_OK;
    const [id, extra] = parsed.positionals;
    if (!id) throw new UsageError("which key? polydev keys revoke ID (ids: polydev keys ls)");
    if (extra !== undefined) throw new UsageError(`unexpected argument "${extra}"`);
    const { polydev } = await connect(env);
    await polydev.keys.revoke(id);
    process.stdout.write(`Revoked ${id}\n`);
    return EXIT_OK;
  });
}
