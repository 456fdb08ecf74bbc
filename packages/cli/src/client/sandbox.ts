/** `polydev sandbox create | ls | rm | stop | start | fork | snapshot | exec | shell | network | audit`. */
import type { CreateSandbox, Polydev, Sandbox } from "@polydev/sdk";
import { connect } from "./config.js";
import {
  EXIT_FAILED,
  EXIT_OK,
  formatAge,
  formatTable,
  parseCommand,
  readStdin,
  remoteExitCode,
  reportError,
  runCommand,
  UsageError,
  withSpinner,
} from "./io.js";
import { audit, network, networkFromOptions } from "./network.js";
import { attachShell } from "./shell.js";

export const SANDBOX_HELP = `Usage: polydev sandbox <command> [options]

Commands:
  create    create a sandbox and print its id
  ls        list your sandboxes
  rm        destroy sandboxes
  hibernate freeze sandboxes (processes stop, files and memory stay)
  resume    thaw hibernated sandboxes
  stop      end sandboxes' processes and keep their disks (drivers that keep disks)
  start     start stopped sandboxes from their disks
  fork      make new sandboxes from copies of a sandbox's disk
  snapshot  turn a sandbox's disk into an image new sandboxes start from
  exec      run a command in a sandbox, streaming its output
  shell     attach this terminal to a shell in a sandbox
  logs      a sandbox's lifecycle log and console output (kept after a failure)
  stats     a sandbox's live CPU, memory, process and disk use
  network   show or change an allow-list sandbox's egress policy
  audit     an allow-list sandbox's connections, allowed and denied (--follow for live)

Run 'polydev sandbox <command> --help' for a command's options.
`;

const CREATE_HELP = `Usage: polydev sandbox create [options]

Options (server default):
  --name NAME             your name for it, usable instead of its id (lowercase, digits, -)
  --image NAME            the image to start from: polydev/base, or one you built, pulled,
                          imported or snapshotted (polydev image ls) (polydev/base where the
                          server has images)
  --driver NAME           the isolation backend: namespace, or another driver the server runs
                          (curl $POLYDEV_URL/healthz lists them) (the server's default)
  --cpu N                 CPU cores, 0.05 … 8 (1)
  --memory-mb N           memory limit in MiB (512)
  --disk-mb N             home size in MiB (1024)
  --pids-max N            process limit (256)
  --network MODE          none: loopback only; egress: outbound internet; allowlist: only
                          the destinations allowed below, checked outside the sandbox (none)
  --allow ENTRY           allowlist: a name, *.domain, *, an IP or a CIDR it may reach (repeatable)
  --deny ENTRY            allowlist: refused even if allowed (repeatable)
  --preset NAME           allowlist: a preset's entries apply too (repeatable; polydev presets ls)
  --timeout-ms N          hard time to live (24 h)
  --idle-timeout-ms N     time to live without activity (30 min)
  --env KEY=VALUE         environment variable for commands in it (repeatable)
  --label KEY=VALUE       metadata (repeatable)
  --json                  print the whole sandbox as JSON instead of its id

--allow, --deny or --preset without --network mean --network allowlist.

Examples:
  polydev sandbox create --memory-mb 1024 --network egress
  polydev sandbox create --image alice/node:1 --disk-mb 4096
  polydev sandbox create --network allowlist --preset package-registries --allow git.example.com
`;

const LS_HELP = `Usage: polydev sandbox ls [--json]

Lists your sandboxes: id, state, age and limits.
`;

const RM_HELP = `Usage: polydev sandbox rm ID...

Destroys the sandboxes (and everything in them). Destroying one that is already gone is fine.
`;

const HIBERNATE_HELP = `Usage: polydev sandbox hibernate ID...

Freezes every process of the sandboxes; their files and memory stay. Resume them with
polydev sandbox resume ID.
`;

const RESUME_HELP = `Usage: polydev sandbox resume ID...

Thaws hibernated sandboxes: their processes continue where they stopped.
`;

const STOP_HELP = `Usage: polydev sandbox stop ID...

Ends every process of the sandboxes and keeps their disks (servers whose driver keeps disks).
polydev sandbox start ID, or any exec, shell or cp, brings one back with its files.
`;

const START_HELP = `Usage: polydev sandbox start ID...

Starts stopped sandboxes from their disks (hibernated ones are resumed).
`;

const FORK_HELP = `Usage: polydev sandbox fork [options] ID

Makes new sandboxes whose disks start as copies of this one's (copy-on-write), with the same
limits, network and environment, and prints their ids. All or none.

Options:
  --count N      how many, 1 … 16 (1)
  --name NAME    a name for each new sandbox, in order (repeat once per sandbox)
  --json         print the new sandboxes as JSON instead of their ids

Example:
  polydev sandbox fork --count 3 sbx_123
`;

const SNAPSHOT_HELP = `Usage: polydev sandbox snapshot [--json] ID NAME

Turns the sandbox's disk, as it is now, into the image NAME: its image plus one copy-on-write
layer of its changes. The sandbox keeps running. Prints the image's name and digest; start
from it with polydev sandbox create --image NAME. Needs a server whose driver can snapshot.

Example:
  polydev sandbox snapshot sbx_123 alice/with-deps:1
`;

const EXEC_HELP = `Usage: polydev sandbox exec [options] ID -- CMD [ARG...]

Runs a command in the sandbox, streams its stdout and stderr here as they are produced, and exits
with its exit code (128+N when killed by signal N, 124 on timeout). Several words after -- are run
as they are (no shell); a single word is a shell line, so pipes and globs work: -- 'ls | wc -l'.

Options:
  --cwd DIR          working directory, relative to the home
  --env KEY=VALUE    extra environment variable (repeatable)
  --timeout-ms N     kill the command after this long
  --stdin            send this command's stdin to the remote command

Example:
  polydev sandbox exec sbx_123 -- npm test
`;

const SHELL_HELP = `Usage: polydev sandbox shell [--reconnect ID] ID

Attaches this terminal to an interactive shell in the sandbox. The command ends when the shell
exits, with the shell's exit code. Ctrl-] detaches and leaves the shell running for a while:
'polydev sandbox shell --reconnect RID ID' reattaches to it (the id is printed on detach).
A dropped connection is reattached by itself.

Example:
  polydev sandbox shell sbx_123
`;

const LOGS_HELP = `Usage: polydev sandbox logs [--json] ID

Prints the sandbox's lifecycle log (time, level, source, message) and then its console output.
A failed sandbox keeps both, so this is where to read why it failed.
`;

const STATS_HELP = `Usage: polydev sandbox stats [--json] ID

Prints the sandbox's CPU time, memory (and its limit), process count and disk use right now.
`;

export function sandbox(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case "create":
      return create(rest, env);
    case "ls":
    case "list":
      return list(rest, env);
    case "rm":
    case "remove":
      return remove(rest, env);
    case "hibernate":
      return forEachSandbox("hibernate", rest, env, HIBERNATE_HELP, "Hibernating", (p, id) =>
        p.sandboxes.hibernate(id),
      );
    case "resume":
      return forEachSandbox("resume", rest, env, RESUME_HELP, "Resuming", (p, id) => p.sandboxes.resume(id));
    case "stop":
      return forEachSandbox("stop", rest, env, STOP_HELP, "Stopping", (p, id) => p.sandboxes.stop(id));
    case "start":
      return forEachSandbox("start", rest, env, START_HELP, "Starting", (p, id) => p.sandboxes.start(id));
    case "fork":
      return fork(rest, env);
    case "snapshot":
      return snapshot(rest, env);
    case "exec":
      return exec(rest, env);
    case "shell":
      return shell(rest, env);
    case "logs":
      return logs(rest, env);
    case "stats":
      return stats(rest, env);
    case "network":
      return network(rest, env);
    case "audit":
      return audit(rest, env);
    case "--help":
    case "-h":
    case "help":
      process.stdout.write(SANDBOX_HELP);
      return Promise.resolve(EXIT_OK);
    default:
      return Promise.resolve(
        reportError(
          new UsageError(command ? `unknown sandbox command "${command}"` : "which sandbox command?"),
          "polydev sandbox",
        ),
      );
  }
}

function create(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return runCommand("polydev sandbox create", async () => {
    const parsed = parseCommand(
      argv,
      {
        name: { type: "string" },
        image: { type: "string" },
        driver: { type: "string" },
        cpu: { type: "string" },
        "memory-mb": { type: "string" },
        "disk-mb": { type: "string" },
        "pids-max": { type: "string" },
        network: { type: "string" },
        allow: { type: "string", multiple: true },
        deny: { type: "string", multiple: true },
        preset: { type: "string", multiple: true },
        "timeout-ms": { type: "string" },
        "idle-timeout-ms": { type: "string" },
        env: { type: "string", multiple: true },
        label: { type: "string", multiple: true },
        json: { type: "boolean" },
      },
      CREATE_HELP,
    );
    if (!parsed) return EXIT_OK;
    const { values, positionals } = parsed;
    if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    const body: CreateSandbox = {};
    if (values.name !== undefined) body.name = values.name;
    if (values.image !== undefined) body.image = values.image;
    if (values.driver !== undefined) body.driver = values.driver;
    if (values.cpu !== undefined) body.cpu = numberOption("--cpu", values.cpu, { integer: false });
    if (values["memory-mb"] !== undefined) body.memoryMb = numberOption("--memory-mb", values["memory-mb"]);
    if (values["disk-mb"] !== undefined) body.diskMb = numberOption("--disk-mb", values["disk-mb"]);
    if (values["pids-max"] !== undefined) body.pidsMax = numberOption("--pids-max", values["pids-max"]);
    if (values["timeout-ms"] !== undefined)
      body.timeoutMs = numberOption("--timeout-ms", values["timeout-ms"]);
    if (values["idle-timeout-ms"] !== undefined)
      body.idleTimeoutMs = numberOption("--idle-timeout-ms", values["idle-timeout-ms"]);
    const networkSetting = networkFromOptions(values);
    if (networkSetting !== undefined) body.network = networkSetting;
    if (values.env) body.env = pairs("--env", values.env);
    if (values.label) body.metadata = pairs("--label", values.label);
    const { polydev } = await connect(env);
    const box = await withSpinner("Creating a sandbox", () => polydev.sandboxes.create(body));
    process.stdout.write(values.json ? `${JSON.stringify(box)}\n` : `${box.id}\n`);
    return EXIT_OK;
  });
}

function list(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return runCommand("polydev sandbox ls", async () => {
    const parsed = parseCommand(argv, { json: { type: "boolean" } }, LS_HELP);
    if (!parsed) return EXIT_OK;
    if (parsed.positionals.length > 0) throw new UsageError(`unexpected argument "${parsed.positionals[0]}"`);
    const { polydev } = await connect(env);
    const boxes = await allSandboxes(polydev);
    if (parsed.values.json) {
      process.stdout.write(`${JSON.stringify(boxes)}\n`);
      return EXIT_OK;
    }
    const rows = [["ID", "NAME", "STATE", "AGE", "DRIVER", "CPU", "MEMORY", "DISK", "NETWORK"]];
    for (const box of boxes) {
      rows.push([
        box.id,
        box.name ?? "-",
        box.state === "failed" && box.failureReason ? `failed: ${box.failureReason}` : box.state,
        formatAge(box.createdAt),
        box.driver,
        String(box.cpu),
        `${box.memoryMb} MiB`,
        `${box.diskMb} MiB`,
        box.network,
      ]);
    }
    process.stdout.write(
      boxes.length === 0 ? "No sandboxes (create one: polydev sandbox create)\n" : formatTable(rows),
    );
    return EXIT_OK;
  });
}

async function allSandboxes(polydev: Polydev): Promise<Sandbox[]> {
  const boxes: Sandbox[] = [];
  for await (const box of polydev.sandboxes.listAll()) boxes.push(box);
  return boxes;
}

function fork(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return runCommand("polydev sandbox fork", async () => {
    const parsed = parseCommand(
      argv,
      { count: { type: "string" }, name: { type: "string", multiple: true }, json: { type: "boolean" } },
      FORK_HELP,
    );
    if (!parsed) return EXIT_OK;
    const id = onlyId(parsed.positionals, "polydev sandbox fork [--count N] ID");
    const names = parsed.values.name;
    const count =
      parsed.values.count !== undefined ? numberOption("--count", parsed.values.count) : (names?.length ?? 1);
    if (names && names.length !== count) {
      throw new UsageError(`give one --name per new sandbox (${count}), or none (got ${names.length})`);
    }
    const { polydev } = await connect(env);
    const forks = await withSpinner(`Forking ${id}`, () =>
      polydev.sandboxes.fork(id, { count, ...(names ? { names } : {}) }),
    );
    process.stdout.write(
      parsed.values.json ? `${JSON.stringify(forks)}\n` : forks.map((f) => `${f.id}\n`).join(""),
    );
    return EXIT_OK;
  });
}

function snapshot(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return runCommand("polydev sandbox snapshot", async () => {
    const parsed = parseCommand(argv, { json: { type: "boolean" } }, SNAPSHOT_HELP);
    if (!parsed) return EXIT_OK;
    const [id, name, extra] = parsed.positionals;
    if (!id || !name)
      throw new UsageError("which sandbox, and what image name? polydev sandbox snapshot ID NAME");
    if (extra !== undefined) throw new UsageError(`unexpected argument "${extra}"`);
    const { polydev } = await connect(env);
    const image = await withSpinner(`Snapshotting ${id}`, () => polydev.sandboxes.snapshot(id, name));
    process.stdout.write(
      parsed.values.json ? `${JSON.stringify(image)}\n` : `${image.name} ${image.digest ?? "-"}\n`,
    );
    return EXIT_OK;
  });
}

function remove(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return forEachSandbox("rm", argv, env, RM_HELP, "Destroying", (polydev, id) =>
    polydev.sandboxes.destroy(id),
  );
}

/** One action on each id given; one failure does not stop the others, each id gets its own line. */
function forEachSandbox(
  name: string,
  argv: string[],
  env: NodeJS.ProcessEnv,
  help: string,
  progress: string,
  action: (polydev: Polydev, id: string) => Promise<unknown>,
): Promise<number> {
  const command = `polydev sandbox ${name}`;
  return runCommand(command, async () => {
    const parsed = parseCommand(argv, {}, help);
    if (!parsed) return EXIT_OK;
    if (parsed.positionals.length === 0) throw new UsageError("which sandbox? give one or more ids");
    const { polydev } = await connect(env);
    let failed = false;
    for (const id of parsed.positionals) {
      try {
        await withSpinner(`${progress} ${id}`, () => action(polydev, id));
        process.stdout.write(`${id}\n`);
      } catch (error) {
        reportError(error, command);
        failed = true;
      }
    }
    return failed ? EXIT_FAILED : EXIT_OK;
  });
}

function exec(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return runCommand("polydev sandbox exec", async () => {
    const parsed = parseCommand(
      argv,
      {
        cwd: { type: "string" },
        env: { type: "string", multiple: true },
        "timeout-ms": { type: "string" },
        stdin: { type: "boolean" },
      },
      EXEC_HELP,
    );
    if (!parsed) return EXIT_OK;
    // parseArgs puts what follows -- among the positionals; split it off again.
    const separator = argv.indexOf("--");
    const command = separator >= 0 ? argv.slice(separator + 1) : parsed.positionals.slice(1);
    const [id, extra] = parsed.positionals.slice(0, parsed.positionals.length - command.length);
    if (!id) throw new UsageError("which sandbox? polydev sandbox exec ID -- CMD");
    if (extra !== undefined) throw new UsageError(`unexpected argument "${extra}" before --`);
    if (command.length === 0) throw new UsageError("which command? polydev sandbox exec ID -- CMD [ARG...]");
    const { values } = parsed;
    const { polydev } = await connect(env);
    const controller = new AbortController();
    const onSignal = (): void => controller.abort();
    process.once("SIGINT", onSignal);
    try {
      for await (const event of polydev.sandboxes.execStream(
        id,
        {
          cmd: command.length === 1 && command[0] !== undefined ? command[0] : command,
          ...(values.cwd !== undefined ? { cwd: values.cwd } : {}),
          ...(values.env ? { env: pairs("--env", values.env) } : {}),
          ...(values["timeout-ms"] !== undefined
            ? { timeoutMs: numberOption("--timeout-ms", values["timeout-ms"]) }
            : {}),
          ...(values.stdin ? { stdin: await readStdin() } : {}),
        },
        { signal: controller.signal },
      )) {
        if (event.type === "exit") return remoteExitCode(event);
        (event.type === "stderr" ? process.stderr : process.stdout).write(event.data);
      }
      throw new Error("the output stream ended before the command's exit status");
    } catch (error) {
      // Ctrl-C: the aborted request ends the remote command too.
      if (controller.signal.aborted) return 130;
      throw error;
    } finally {
      process.off("SIGINT", onSignal);
    }
  });
}

function shell(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return runCommand("polydev sandbox shell", async () => {
    const parsed = parseCommand(argv, { reconnect: { type: "string" } }, SHELL_HELP);
    if (!parsed) return EXIT_OK;
    const [id, extra] = parsed.positionals;
    if (!id) throw new UsageError("which sandbox? polydev sandbox shell ID");
    if (extra !== undefined) throw new UsageError(`unexpected argument "${extra}"`);
    const { polydev } = await connect(env);
    return attachShell(polydev, id, parsed.values.reconnect);
  });
}

function logs(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return runCommand("polydev sandbox logs", async () => {
    const parsed = parseCommand(argv, { json: { type: "boolean" } }, LOGS_HELP);
    if (!parsed) return EXIT_OK;
    const id = onlyId(parsed.positionals, "polydev sandbox logs ID");
    const { polydev } = await connect(env);
    const answer = await polydev.sandboxes.logs(id);
    if (parsed.values.json) {
      process.stdout.write(`${JSON.stringify(answer)}\n`);
      return EXIT_OK;
    }
    for (const line of answer.items)
      process.stdout.write(`${line.at}  ${line.level.padEnd(5)}  ${line.source}: ${line.message}\n`);
    if (answer.console) process.stdout.write(`--- console ---\n${answer.console.replace(/\n?$/, "\n")}`);
    return EXIT_OK;
  });
}

function stats(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return runCommand("polydev sandbox stats", async () => {
    const parsed = parseCommand(argv, { json: { type: "boolean" } }, STATS_HELP);
    if (!parsed) return EXIT_OK;
    const id = onlyId(parsed.positionals, "polydev sandbox stats ID");
    const { polydev } = await connect(env);
    const now = await polydev.sandboxes.stats(id);
    if (parsed.values.json) {
      process.stdout.write(`${JSON.stringify(now)}\n`);
      return EXIT_OK;
    }
    process.stdout.write(
      formatTable([
        ["CPU TIME", "MEMORY", "PROCESSES", "DISK"],
        [
          `${(now.cpuUsageNs / 1e9).toFixed(2)}s`,
          `${mebibytes(now.memoryBytes)} / ${mebibytes(now.memoryLimitBytes)}`,
          String(now.pids),
          mebibytes(now.diskBytes),
        ],
      ]),
    );
    return EXIT_OK;
  });
}

function mebibytes(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

function onlyId(positionals: string[], usage: string): string {
  const [id, extra] = positionals;
  if (!id) throw new UsageError(`which sandbox? ${usage}`);
  if (extra !== undefined) throw new UsageError(`unexpected argument "${extra}"`);
  return id;
}

function numberOption(name: string, text: string, { integer = true } = {}): number {
  const value = Number(text);
  if (text.trim() === "" || !Number.isFinite(value) || (integer && !Number.isInteger(value)))
    throw new UsageError(`${name} takes ${integer ? "a whole number" : "a number"} (got "${text}")`);
  return value;
}

function pairs(name: string, items: string[]): Record<string, string> {
  const result: Record<string, string> = {};
  for (const item of items) {
    const eq = item.indexOf("=");
    if (eq <= 0) throw new UsageError(`${name} takes KEY=VALUE (got "${item}")`);
    result[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return result;
}
