/** `polydev image build | ls | rm | pull | import | log`. */
import { spawn } from "node:child_process";
import { createReadStream } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { Readable } from "node:stream";
import type { Polydev } from "@polydev/sdk";
import { connect } from "./config.js";
import {
  CommandError,
  EXIT_FAILED,
  EXIT_OK,
  formatAge,
  formatTable,
  parseCommand,
  reportError,
  runCommand,
  UsageError,
} from "./io.js";

export const IMAGE_HELP = `Usage: polydev image <command> [options]

Commands:
  build     build an image from a Dockerfile (and a context directory), streaming its log
  ls        list your images and the system ones
  rm        delete images (refused while a sandbox made from one exists)
  pull      pull an image from a registry
  import    import an OCI image layout or 'docker save' tar file
  log       print an image's build log (--follow while it builds)

Run 'polydev image <command> --help' for a command's options.
`;

const BUILD_HELP = `Usage: polydev image build [options] NAME [CONTEXT_DIR]

Builds NAME (e.g. alice/node:1) from a Dockerfile whose FROM names an image in the store
(polydev image ls), streams the build log and exits 0 once the image is ready.
With CONTEXT_DIR, the directory is uploaded (as a tar) with its Dockerfile, and COPY/ADD read from
it; without, the Dockerfile (-f) is sent alone and may not COPY.

Options:
  -f, --file PATH      the Dockerfile (default: CONTEXT_DIR/Dockerfile, or ./Dockerfile)
  --build-arg K=V      a build argument (repeatable; only without CONTEXT_DIR)

Example:
  polydev image build -f Dockerfile alice/tools:1
  polydev image build alice/app:1 .
`;

const LS_HELP = `Usage: polydev image ls [--json]

Lists your images and the system images: name, state, size, age.
`;

const RM_HELP = `Usage: polydev image rm NAME...

Deletes your images; layers no other image uses are removed.
`;

const PULL_HELP = `Usage: polydev image pull NAME REFERENCE

Pulls REFERENCE (e.g. docker.io/library/debian:12) into your image NAME and streams the progress.
`;

const IMPORT_HELP = `Usage: polydev image import NAME FILE

Imports FILE, an OCI image layout or 'docker save' tar (not gzipped), as your image NAME.
`;

const LOG_HELP = `Usage: polydev image log [--follow] NAME

Prints the image's build or pull log; --follow keeps printing until the build ends.
`;

export function image(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case "build":
      return build(rest, env);
    case "ls":
    case "list":
      return list(rest, env);
    case "rm":
    case "remove":
      return remove(rest, env);
    case "pull":
      return pull(rest, env);
    case "import":
      return importArchive(rest, env);
    case "log":
    case "logs":
      return log(rest, env);
    case "--help":
    case "-h":
    case "help":
      process.stdout.write(IMAGE_HELP);
      return Promise.resolve(EXIT_OK);
    default:
      return Promise.resolve(
        reportError(
          new UsageError(command ? `unknown image command "${command}"` : "which image command?"),
          "polydev image",
        ),
      );
  }
}

/** Streams the log until the build ends; 0 when the image is ready. */
async function follow(polydev: Polydev, name: string): Promise<number> {
  for await (const text of polydev.images.log(name, { follow: true })) process.stdout.write(text);
  const image = await polydev.images.get(name);
  if (image.state === "ready") {
    process.stderr.write(`${name} is ready (${image.digest})\n`);
    return EXIT_OK;
  }
  process.stderr.write(`polydev: ${name} ${image.state}${image.error ? `: ${image.error}` : ""}\n`);
  return EXIT_FAILED;
}

function parseBuildArgs(values: string[] | undefined): Record<string, string> | undefined {
  if (!values || values.length === 0) return undefined;
  const args: Record<string, string> = {};
  for (const item of values) {
    const at = item.indexOf("=");
    if (at <= 0) throw new UsageError(`--build-arg ${item}: write KEY=VALUE`);
    args[item.slice(0, at)] = item.slice(at + 1);
  }
  return args;
}

/** The directory as a tar stream (the local `tar`), for a build context upload. */
function tarOf(dir: string): Readable {
  const child = spawn("tar", ["-c", "-f", "-", "-C", dir, "."], { stdio: ["ignore", "pipe", "inherit"] });
  child.on("error", (error) => child.stdout.destroy(error));
  return child.stdout;
}

function build(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return runCommand("polydev image build", async () => {
    const parsed = parseCommand(
      argv,
      { file: { type: "string", short: "f" }, "build-arg": { type: "string", multiple: true } },
      BUILD_HELP,
    );
    if (!parsed) return EXIT_OK;
    const [name, contextDir, extra] = parsed.positionals;
    if (!name) throw new UsageError("which image name? (e.g. alice/node:1)");
    if (extra !== undefined) throw new UsageError(`unexpected argument "${extra}"`);
    const { polydev } = await connect(env);
    if (contextDir !== undefined) {
      if (!(await stat(contextDir).catch(() => undefined))?.isDirectory()) {
        throw new CommandError(`${contextDir} is not a directory`);
      }
      if (parsed.values["build-arg"])
        throw new UsageError("--build-arg works only without a context directory");
      if (parsed.values.file !== undefined) {
        throw new UsageError("with a context directory the Dockerfile is CONTEXT_DIR/Dockerfile; drop -f");
      }
      const body = Readable.toWeb(tarOf(contextDir)) as ReadableStream<Uint8Array>;
      await polydev.images.build({ name, context: body });
    } else {
      const file = parsed.values.file ?? "Dockerfile";
      const dockerfile = await readFile(file, "utf8").catch(() => {
        throw new CommandError(`cannot read the Dockerfile ${file}`);
      });
      const buildArgs = parseBuildArgs(parsed.values["build-arg"]);
      await polydev.images.build({ name, dockerfile, ...(buildArgs ? { buildArgs } : {}) });
    }
    return follow(polydev, name);
  });
}

function list(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return runCommand("polydev image ls", async () => {
    const parsed = parseCommand(argv, { json: { type: "boolean" } }, LS_HELP);
    if (!parsed) return EXIT_OK;
    if (parsed.positionals.length > 0) throw new UsageError(`unexpected argument "${parsed.positionals[0]}"`);
    const { polydev } = await connect(env);
    const { images } = await polydev.images.list();
    if (parsed.values.json) {
      process.stdout.write(`${JSON.stringify(images)}\n`);
      return EXIT_OK;
    }
    const rows = [["NAME", "STATE", "SIZE", "AGE", "DIGEST"]];
    for (const item of images) {
      rows.push([
        item.system ? `${item.name} (system)` : item.name,
        item.state,
        `${(item.sizeBytes / 1024 / 1024).toFixed(1)} MiB`,
        formatAge(item.createdAt),
        item.digest ? item.digest.slice(0, 19) : "-",
      ]);
    }
    process.stdout.write(
      images.length === 0 ? "No images (build one: polydev image build)\n" : formatTable(rows),
    );
    return EXIT_OK;
  });
}

function remove(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return runCommand("polydev image rm", async () => {
    const parsed = parseCommand(argv, {}, RM_HELP);
    if (!parsed) return EXIT_OK;
    if (parsed.positionals.length === 0) throw new UsageError("which images?");
    const { polydev } = await connect(env);
    let failed = false;
    for (const name of parsed.positionals) {
      try {
        await polydev.images.delete(name);
        process.stdout.write(`${name}\n`);
      } catch (error) {
        reportError(error, "polydev image rm");
        failed = true;
      }
    }
    return failed ? EXIT_FAILED : EXIT_OK;
  });
}

function pull(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return runCommand("polydev image pull", async () => {
    const parsed = parseCommand(argv, {}, PULL_HELP);
    if (!parsed) return EXIT_OK;
    const [name, reference, extra] = parsed.positionals;
    if (!name || !reference) throw new UsageError("give NAME and REFERENCE");
    if (extra !== undefined) throw new UsageError(`unexpected argument "${extra}"`);
    const { polydev } = await connect(env);
    await polydev.images.pull(name, reference);
    return follow(polydev, name);
  });
}

function importArchive(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return runCommand("polydev image import", async () => {
    const parsed = parseCommand(argv, {}, IMPORT_HELP);
    if (!parsed) return EXIT_OK;
    const [name, file, extra] = parsed.positionals;
    if (!name || !file) throw new UsageError("give NAME and FILE");
    if (extra !== undefined) throw new UsageError(`unexpected argument "${extra}"`);
    if (!(await stat(file).catch(() => undefined))?.isFile()) throw new CommandError(`${file} is not a file`);
    const { polydev } = await connect(env);
    const body = Readable.toWeb(createReadStream(file)) as ReadableStream<Uint8Array>;
    const imported = await polydev.images.import(name, body);
    process.stdout.write(`${imported.name} ${imported.digest}\n`);
    return EXIT_OK;
  });
}

function log(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return runCommand("polydev image log", async () => {
    const parsed = parseCommand(argv, { follow: { type: "boolean" } }, LOG_HELP);
    if (!parsed) return EXIT_OK;
    const [name, extra] = parsed.positionals;
    if (!name) throw new UsageError("which image?");
    if (extra !== undefined) throw new UsageError(`unexpected argument "${extra}"`);
    const { polydev } = await connect(env);
    for await (const text of polydev.images.log(name, { follow: parsed.values.follow === true })) {
      process.stdout.write(text);
    }
    return EXIT_OK;
  });
}
