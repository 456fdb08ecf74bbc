/**
 * Payloads that run code in whatever process honours an environment variable: a preload
 * library, shell start-up files, PS4 under xtrace, a Node `--require`, a Python sitecustomize,
 * PATH wrappers. Each appends `uid=<uid> via=<how>` to one marker path.
 *
 * The payload directory and the marker have the same absolute path on the host and inside a
 * sandbox (whose /tmp is its own): a payload that fires inside leaves its line in the sandbox's
 * marker, which proves the payload works; one that fires in a host process leaves it in the
 * host's marker, which is the hole. The host copy exists so that a host process that receives
 * the environment finds something to run, as it would once a sandbox had got a file onto the
 * host by any other way (its background output file, say).
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmod, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { promisify } from "node:util";
import type { AgentConnection } from "../agent.js";
import { runCommand } from "./run-command.js";

const run = promisify(execFile);

/** Programs a host-side helper might look up through PATH. */
const PATH_WRAPPED = [
  "sh",
  "bash",
  "env",
  "nsenter",
  "setpriv",
  "unshare",
  "cat",
  "id",
  "python3",
  "node",
  "realpath",
  "find",
  "mkdir",
  "mv",
  "wc",
] as const;

export interface PayloadFile {
  /** Relative to the payload directory. */
  name: string;
  content: Buffer;
  mode: number;
}

export interface EscapePayloads {
  /** The payload directory (same path on the host and inside sandboxes). */
  readonly dir: string;
  /** Where every payload appends its line. */
  readonly marker: string;
  /** The preload library's path. */
  readonly library: string;
  /** The shell start-up file (ENV, BASH_ENV). */
  readonly rcFile: string;
  /** One line of shell that appends a marker line naming `via`. */
  markerLine(via: string): string;
  /** Every variable that would make a process run a payload. */
  readonly env: Readonly<Record<string, string>>;
  readonly files: readonly PayloadFile[];
  /** Copies the payload directory into a sandbox (through its home, then cp). */
  install(connection: AgentConnection): Promise<void>;
  /** The host's marker, removed after reading: undefined when no host process ran a payload. */
  takeHostMarker(): Promise<string | undefined>;
  /** The sandbox's marker, removed after reading ("" when nothing fired inside). */
  takeSandboxMarker(connection: AgentConnection): Promise<string>;
  cleanup(): Promise<void>;
}

const preloadSource = (marker: string): string => `#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
__attribute__((constructor)) static void polydev_probe_payload(void) {
  char exe[256] = "?";
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) exe[n] = 0;
  int fd = open(${JSON.stringify(marker)}, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
  if (fd < 0) return;
  char map[128] = "?";
  int mapfd = open("/proc/self/uid_map", O_RDONLY | O_CLOEXEC);
  if (mapfd >= 0) {
    ssize_t got = read(mapfd, map, sizeof map - 1);
    close(mapfd);
    map[got > 0 ? got : 0] = 0;
    for (char *c = map; *c; c++) {
      if (*c == '\\n') { *c = 0; break; }
      if (*c == ' ' || *c == '\\t') *c = '_';
    }
  }
  char line[512];
  int len = snprintf(line, sizeof line, "uid=%u euid=%u via=preload map=%s exe=%s\\n", getuid(), geteuid(), map, exe);
  if (len > 0) write(fd, line, (size_t)len);
  close(fd);
}
`;

/**
 * Builds the preload library with the host's C compiler or, failing that, inside `fallback`
 * (the host's /usr is visible there on the namespace driver).
 */
async function buildLibrary(source: string, workDir: string, fallback?: AgentConnection): Promise<Buffer> {
  const sourceFile = join(workDir, "preload.c");
  const output = join(workDir, "preload-built.so");
  await writeFile(sourceFile, source);
  try {
    await run("cc", ["-shared", "-fPIC", "-O2", "-o", output, sourceFile], {
      env: { PATH: "/usr/bin:/bin" },
    });
    return await readFile(output);
  } catch (hostError) {
    if (fallback === undefined) {
      throw new Error(`no C compiler on the host to build the preload payload: ${String(hostError)}`);
    }
    await fallback.files.write(".polydev-preload.c", Readable.from([Buffer.from(source)]));
    const built = await runCommand(
      fallback,
      "cc -shared -fPIC -O2 -o .polydev-preload.so .polydev-preload.c && base64 -w0 .polydev-preload.so",
    );
    if (built.exitCode !== 0) {
      throw new Error(`no C compiler on the host or in the sandbox: ${built.stderr.trim()}`);
    }
    return Buffer.from(built.stdout.trim(), "base64");
  }
}

export async function preparePayloads(fallback?: AgentConnection): Promise<EscapePayloads> {
  const runId = randomBytes(6).toString("hex");
  const dir = `/tmp/polydev-escape-${runId}`;
  const marker = `/tmp/polydev-escape-${runId}.marker`;
  const library = `${dir}/preload.so`;
  const rcFile = `${dir}/rc.sh`;
  // The uid map tells a process in the host's user namespace ("0 0 4294967295") from one inside.
  const markerLine = (via: string): string =>
    `printf 'uid=%s via=${via} map=%s\\n' "$(/usr/bin/id -u)" "$(/usr/bin/head -n1 /proc/self/uid_map | /usr/bin/tr -s ' \\t' __)" >> ${marker} 2>/dev/null`;
  await mkdir(dir, { mode: 0o755 });
  const so = await buildLibrary(preloadSource(marker), dir, fallback);
  const files: PayloadFile[] = [
    { name: "preload.so", content: so, mode: 0o755 },
    { name: "gconv/preload.so", content: so, mode: 0o755 },
    {
      name: "gconv/gconv-modules",
      content: Buffer.from(
        "module\tINTERNAL\tPOLYDEV-PROBE//\tpreload\t1\nmodule\tPOLYDEV-PROBE//\tINTERNAL\tpreload\t1\n",
      ),
      mode: 0o644,
    },
    { name: "rc.sh", content: Buffer.from(`${markerLine("shell-rc:$0")}\n`), mode: 0o755 },
    {
      name: "node.cjs",
      content: Buffer.from(
        `try { require("fs").appendFileSync(${JSON.stringify(marker)}, "uid=" + process.getuid() + " via=NODE_OPTIONS map=" + require("fs").readFileSync("/proc/self/uid_map", "utf8").split("\\n")[0].replace(/\\s+/g, "_") + "\\n"); } catch {}\n`,
      ),
      mode: 0o644,
    },
    {
      name: "py/sitecustomize.py",
      content: Buffer.from(
        `import os\ntry:\n    open(${JSON.stringify(marker)}, "a").write("uid=%d via=PYTHONPATH map=%s\\n" % (os.getuid(), "_".join(open("/proc/self/uid_map").readline().split())))\nexcept OSError:\n    pass\n`,
      ),
      mode: 0o644,
    },
    ...PATH_WRAPPED.map(
      (name): PayloadFile => ({
        name: `bin/${name}`,
        content: Buffer.from(`#!/bin/sh\n${markerLine(`PATH:${name}`)}\nexec /usr/bin/${name} "$@"\n`),
        mode: 0o755,
      }),
    ),
  ];
  for (const file of files) {
    const path = join(dir, file.name);
    await mkdir(join(path, ".."), { recursive: true, mode: 0o755 });
    await writeFile(path, file.content);
    await chmod(path, file.mode);
  }
  await rm(join(dir, "preload.c"), { force: true });
  await rm(join(dir, "preload-built.so"), { force: true });

  const env = Object.freeze({
    LD_PRELOAD: library,
    LD_AUDIT: library,
    LD_LIBRARY_PATH: dir,
    GCONV_PATH: `${dir}/gconv`,
    BASH_ENV: rcFile,
    ENV: rcFile,
    SHELLOPTS: "xtrace",
    PS4: `$(${markerLine("PS4")})+ `,
    NODE_OPTIONS: `--require ${dir}/node.cjs`,
    PYTHONPATH: `${dir}/py`,
    PATH: `${dir}/bin:/usr/local/bin:/usr/bin:/bin`,
  });

  return {
    dir,
    marker,
    library,
    rcFile,
    markerLine,
    env,
    files,
    async install(connection) {
      for (const file of files) {
        await connection.files.write(`.polydev-escape/${file.name}`, Readable.from([file.content]), {
          mode: file.mode,
        });
      }
      // Run with a clean PATH and no payload variables, whatever the sandbox's own env says.
      const copied = await runCommand(
        connection,
        ["/usr/bin/env", "-i", "PATH=/usr/bin:/bin", "/bin/sh", "-c", `mkdir -p ${dir} && cp -R . ${dir}/`],
        { cwd: ".polydev-escape" },
      );
      if (copied.exitCode !== 0) throw new Error(`could not install the payloads: ${copied.stderr}`);
    },
    async takeHostMarker() {
      const text = await readFile(marker, "utf8").catch(() => undefined);
      await rm(marker, { force: true });
      return text;
    },
    async takeSandboxMarker(connection) {
      const result = await runCommand(connection, [
        "/usr/bin/env",
        "-i",
        "PATH=/usr/bin:/bin",
        "/bin/sh",
        "-c",
        `cat ${marker} 2>/dev/null; rm -f ${marker}`,
      ]);
      return result.stdout;
    },
    async cleanup() {
      await rm(dir, { recursive: true, force: true });
      await rm(marker, { force: true });
    },
  };
}
