/**
 * `polydev sandbox network | audit` and `polydev presets`: an allow-list sandbox's egress policy,
 * what it connected to (and was refused), and the named presets an admin defines.
 */
import type { EgressAuditEvent, NetworkSetting, NetworkUpdate, SandboxNetwork } from "@polydev/sdk";
import { connect } from "./config.js";
import { EXIT_OK, formatTable, parseCommand, reportError, runCommand, UsageError } from "./io.js";

export const NETWORK_HELP = `Usage: polydev sandbox network [options] ID

Without options, prints the sandbox's network mode and, for an allow-list sandbox, its own
allow and deny entries, its presets, and the effective lists (own entries plus the presets').
With --allow, --deny or --preset, replaces those lists of an allow-list sandbox while it runs;
the next connection follows them. Lists not given stay as they are; an empty value (--deny '')
empties a list.

Entries: a name (registry.example.com), a wildcard (*.example.com: names below it), * (any
name, never private addresses), an IP address or a CIDR (10.20.0.0/16). Deny wins over allow.

Options:
  --allow ENTRY    allowed destination (repeatable)
  --deny ENTRY     refused destination, even if allowed (repeatable)
  --preset NAME    a preset's entries apply too (repeatable; see polydev presets ls)
  --json           print the policy as JSON

Examples:
  polydev sandbox network sbx_123
  polydev sandbox network sbx_123 --allow registry.npmjs.org --allow '*.github.com' --preset github
`;

export const AUDIT_HELP = `Usage: polydev sandbox audit [options] ID

Prints an allow-list sandbox's recent connections and DNS queries, oldest first: time, allowed
or denied and why, kind (tcp or dns), the name asked for, address and port, bytes out and in.
With --follow, keeps printing new ones as they happen, until Ctrl-C.

Options:
  --limit N    how many recent entries (100, at most the server's limit)
  --follow     keep printing new entries as they happen
  --json       one JSON object per line

Example:
  polydev sandbox audit --follow sbx_123
`;

export const PRESETS_HELP = `Usage: polydev presets <command> [options]

Named allow-lists an admin defines (e.g. package-registries, github); give them to a sandbox
with 'polydev sandbox create --network allowlist --preset NAME'.

Commands:
  ls    list the presets and their entries

Run 'polydev presets <command> --help' for a command's options.
`;

const PRESETS_LS_HELP = `Usage: polydev presets ls [--json]

Lists the network presets: name, description, allowed and denied entries.
`;

/** `--network`, `--allow`, `--deny`, `--preset` of `sandbox create` as a create body's `network`. */
export function networkFromOptions(options: {
  network?: string | undefined;
  allow?: string[] | undefined;
  deny?: string[] | undefined;
  preset?: string[] | undefined;
}): NetworkSetting | undefined {
  const { network } = options;
  const rules = options.allow !== undefined || options.deny !== undefined || options.preset !== undefined;
  if (network !== undefined && network !== "none" && network !== "egress" && network !== "allowlist")
    throw new UsageError(`--network is none, egress or allowlist (got "${network}")`);
  if (network === "none" || network === "egress") {
    if (rules)
      throw new UsageError(`--allow, --deny and --preset need --network allowlist (got "${network}")`);
    return network;
  }
  if (network === undefined && !rules) return undefined;
  return {
    mode: "allowlist",
    allow: entries(options.allow),
    ...(options.deny !== undefined ? { deny: entries(options.deny) } : {}),
    ...(options.preset !== undefined ? { presets: entries(options.preset) } : {}),
  };
}

/** Repeated values, where a single empty one means an empty list. */
function entries(values: string[] | undefined): string[] {
  return (values ?? []).filter((value) => value !== "");
}

export function network(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return runCommand("polydev sandbox network", async () => {
    const parsed = parseCommand(
      argv,
      {
        allow: { type: "string", multiple: true },
        deny: { type: "string", multiple: true },
        preset: { type: "string", multiple: true },
        json: { type: "boolean" },
      },
      NETWORK_HELP,
    );
    if (!parsed) return EXIT_OK;
    const id = onlyId(parsed.positionals, "polydev sandbox network ID");
    const { values } = parsed;
    const change: NetworkUpdate = {};
    if (values.allow !== undefined) change.allow = entries(values.allow);
    if (values.deny !== undefined) change.deny = entries(values.deny);
    if (values.preset !== undefined) change.presets = entries(values.preset);
    const { polydev } = await connect(env);
    const policy =
      Object.keys(change).length > 0
        ? await polydev.sandboxes.network.update(id, change)
        : await polydev.sandboxes.network.get(id);
    process.stdout.write(values.json ? `${JSON.stringify(policy)}\n` : describePolicy(policy));
    return EXIT_OK;
  });
}

function describePolicy(policy: SandboxNetwork): string {
  if (policy.mode !== "allowlist") {
    const meaning = policy.mode === "egress" ? "outbound internet" : "loopback only";
    return `mode      ${policy.mode} (${meaning})\n`;
  }
  const list = (items: string[]): string => (items.length > 0 ? items.join(" ") : "-");
  return formatTable([
    ["mode", "allowlist"],
    ["allow", list(policy.allow)],
    ["deny", list(policy.deny)],
    ["presets", list(policy.presets)],
    ["effective allow", list(policy.effective.allow)],
    ["effective deny", list(policy.effective.deny)],
  ]);
}

export function audit(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return runCommand("polydev sandbox audit", async () => {
    const parsed = parseCommand(
      argv,
      { limit: { type: "string" }, follow: { type: "boolean" }, json: { type: "boolean" } },
      AUDIT_HELP,
    );
    if (!parsed) return EXIT_OK;
    const id = onlyId(parsed.positionals, "polydev sandbox audit ID");
    const { values } = parsed;
    let limit: number | undefined;
    if (values.limit !== undefined) {
      limit = Number(values.limit);
      if (!Number.isInteger(limit) || limit < 1)
        throw new UsageError(`--limit takes a whole number above 0 (got "${values.limit}")`);
    }
    const json = values.json === true;
    const { polydev } = await connect(env);
    const page = (): Promise<{ events: EgressAuditEvent[] }> =>
      polydev.sandboxes.network.audit(id, limit === undefined ? {} : { limit });
    let lastId = 0;
    let headerShown = false;
    const print = (events: EgressAuditEvent[]): void => {
      const fresh = events.filter((event) => event.id > lastId);
      lastId = Math.max(lastId, ...fresh.map((event) => event.id));
      if (json) {
        for (const event of fresh) process.stdout.write(`${JSON.stringify(event)}\n`);
        return;
      }
      // Rows printed later cannot be aligned with these; the header's widths are a guide.
      if (fresh.length === 0) return;
      process.stdout.write(formatTable([...(headerShown ? [] : [AUDIT_HEADER]), ...fresh.map(auditRow)]));
      headerShown = true;
    };
    if (!values.follow) {
      const { events } = await page();
      if (events.length === 0 && !json) process.stdout.write("No connections yet\n");
      print([...events].reverse());
      return EXIT_OK;
    }

    // Follow first, then read the page: what happens in between comes on the stream, not lost.
    const controller = new AbortController();
    const onSignal = (): void => controller.abort();
    process.once("SIGINT", onSignal);
    let pageShown = false;
    const early: EgressAuditEvent[] = [];
    let ready: () => void = () => undefined;
    const isReady = new Promise<void>((resolve) => {
      ready = resolve;
    });
    const following = (async () => {
      for await (const event of polydev.sandboxes.network.auditStream(id, {
        signal: controller.signal,
        onReady: ready,
      })) {
        if (pageShown) print([event]);
        else if (early.length < 1000) early.push(event);
      }
    })();
    try {
      await Promise.race([isReady, following]);
      const { events } = await page();
      print([...events].reverse());
      pageShown = true;
      print(early);
      await following;
      return EXIT_OK;
    } catch (error) {
      // Ctrl-C is how following ends.
      if (controller.signal.aborted) return EXIT_OK;
      throw error;
    } finally {
      process.off("SIGINT", onSignal);
      controller.abort();
      await following.catch(() => undefined);
    }
  });
}

const AUDIT_HEADER = ["TIME", "DECISION", "REASON", "KIND", "HOST", "ADDRESS", "OUT", "IN"];

function auditRow(event: EgressAuditEvent): string[] {
  return [
    event.at,
    event.decision,
    event.reason,
    event.kind,
    event.host ?? "-",
    event.address.includes(":") ? `[${event.address}]:${event.port}` : `${event.address}:${event.port}`,
    String(event.bytesOut),
    String(event.bytesIn),
  ];
}

export function presets(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case "ls":
    case "list":
      return listPresets(rest, env);
    case "--help":
    case "-h":
    case "help":
      process.stdout.write(PRESETS_HELP);
      return Promise.resolve(EXIT_OK);
    default:
      return Promise.resolve(
        reportError(
          new UsageError(command ? `unknown presets command "${command}"` : "which presets command?"),
          "polydev presets",
        ),
      );
  }
}

function listPresets(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return runCommand("polydev presets ls", async () => {
    const parsed = parseCommand(argv, { json: { type: "boolean" } }, PRESETS_LS_HELP);
    if (!parsed) return EXIT_OK;
    if (parsed.positionals.length > 0) throw new UsageError(`unexpected argument "${parsed.positionals[0]}"`);
    const { polydev } = await connect(env);
    const { presets: items } = await polydev.networkPresets.list();
    if (parsed.values.json) {
      process.stdout.write(`${JSON.stringify(items)}\n`);
      return EXIT_OK;
    }
    if (items.length === 0) {
      process.stdout.write("No presets (an admin defines them)\n");
      return EXIT_OK;
    }
    const rows = [["NAME", "DESCRIPTION", "ALLOW", "DENY"]];
    for (const preset of items)
      rows.push([
        preset.name,
        preset.description || "-",
        preset.allow.join(" ") || "-",
        preset.deny.join(" ") || "-",
      ]);
    process.stdout.write(formatTable(rows));
    return EXIT_OK;
  });
}

function onlyId(positionals: string[], usage: string): string {
  const [id, extra] = positionals;
  if (!id) throw new UsageError(`which sandbox? ${usage}`);
  if (extra !== undefined) throw new UsageError(`unexpected argument "${extra}"`);
  return id;
}
