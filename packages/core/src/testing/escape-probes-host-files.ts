/** host-files.*: the host's files, through the shell, /proc, links and the files API. */
import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { expect } from "vitest";
import type { AgentConnection } from "../agent.js";
import type { EscapeProbe, EscapeProbeContext } from "./escape-probe-context.js";
import { expectNoSecrets, outcome, readThroughFilesApi, shellQuote } from "./escape-probe-helpers.js";
import { OPEN_PATHS_SCRIPT, probeProgram } from "./escape-probe-scripts.js";

type OpenResult = Record<string, { read?: string; list?: string[]; readError?: string; write?: string }>;

const unique = (): string => randomBytes(4).toString("hex");

/** A root-only host directory with one file in it, which the probe tries to reach. */
async function withHostTarget<T>(use: (dir: string, file: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), "polydev-escape-target-"));
  const file = join(dir, "original.txt");
  await writeFile(file, "original host content\n", { mode: 0o600 });
  try {
    return await use(dir, file);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function makeLinks(
  context: EscapeProbeContext,
  connection: AgentConnection,
  links: Record<string, string>,
): Promise<void> {
  const line = Object.entries(links)
    .map(([name, target]) => `rm -rf ${shellQuote(name)}; ln -s ${shellQuote(target)} ${shellQuote(name)}`)
    .join("; ");
  const made = await context.sh(connection, `${line}; echo made`);
  expect(made.stdout, `could not make the symlinks: ${made.stderr}`).toBe("made\n");
}

export const hostFileProbes: EscapeProbe[] = [
  {
    id: "host-files.etc-shadow",
    title: "the host's password hashes and private keys read as nothing",
    async run(context) {
      const { connection } = await context.sandbox("a");
      const keyFiles: string[] = [];
      for (const dir of ["/etc/ssh", "/etc/ssl/private"]) {
        for (const name of await readdir(dir).catch(() => [] as string[])) {
          if (dir.endsWith("private") || name.endsWith("_key")) keyFiles.push(join(dir, name));
        }
      }
      const hostKeys = await Promise.all(keyFiles.map((file) => readFile(file, "utf8").catch(() => "")));
      const paths = ["/etc/shadow", "/etc/gshadow", "/etc/shadow-", "/etc/gshadow-", ...keyFiles];
      const seen = await context.python<OpenResult>(connection, OPEN_PATHS_SCRIPT, { paths });
      for (const path of paths) {
        const read = seen[path]?.read ?? "";
        expect(read, `${path} is readable inside`).toBe("");
      }
      const text = JSON.stringify(Object.values(seen));
      expectNoSecrets(context, text, "/etc");
      for (const key of hostKeys)
        if (key.trim().length > 0) expect(text).not.toContain(key.trim().slice(0, 64));
    },
  },
  {
    id: "host-files.root-home",
    title: "the host's /root is not there",
    async run(context) {
      const { connection } = await context.sandbox("a");
      const hostEntries = await readdir("/root").catch(() => [] as string[]);
      const seen = await context.python<OpenResult>(connection, OPEN_PATHS_SCRIPT, {
        paths: ["/root", `/root/${context.canaryName}`],
      });
      expectNoSecrets(context, JSON.stringify(Object.values(seen)), "/root");
      const inside = seen["/root"]?.list ?? [];
      expect(
        inside.filter((name) => hostEntries.includes(name)),
        "host /root entries listed inside",
      ).toEqual([]);
    },
  },
  {
    id: "host-files.secret-paths",
    title: "the driver's and server's directories (canaries planted) are invisible",
    async run(context) {
      const { connection } = await context.sandbox("a");
      const reads = context
        .secretPaths()
        .map((path) => `cat ${shellQuote(path)} ${shellQuote(`${path}/${context.canaryName}`)} 2>/dev/null`)
        .join("; ");
      const result = await context.sh(
        connection,
        `${reads}; ls -la ${context.secretPaths().map(shellQuote).join(" ")} 2>/dev/null; find / \\( -path /proc -o -path /sys -o -path /usr \\) -prune -o -name ${shellQuote(context.canaryName)} -print 2>/dev/null; echo end`,
      );
      expect(result.stdout.endsWith("end\n")).toBe(true);
      expectNoSecrets(context, result.stdout, "the shell");
    },
  },
  {
    id: "host-files.proc-1-root",
    title: "/proc/<pid>/root and cwd of every visible process are the sandbox's own",
    async run(context) {
      const { connection } = await context.sandbox("a");
      const paths = context.secretPaths().flatMap((path) => [path, `${path}/${context.canaryName}`]);
      const seen = await context.python<{ roots: [number, string, boolean][]; reads: string[] }>(
        connection,
        probeProgram(`
own = os.stat("/")
roots = []
reads = []
for pid in pids():
    for entry in ("root", "cwd"):
        try:
            st = os.stat("/proc/%d/%s" % (pid, entry))
        except OSError:
            continue
        if entry == "root":
            roots.append([pid, comm(pid), (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)])
    for path in ARG["paths"]:
        try:
            with open("/proc/%d/root%s" % (pid, path), "rb") as f:
                reads.append(f.read(4096).decode("utf-8", "replace"))
        except OSError:
            pass
emit({"roots": roots, "reads": reads})`),
        { paths },
      );
      expect(seen.roots.length).toBeGreaterThan(0);
      expect(
        seen.roots.filter(([, , same]) => !same),
        "processes whose root is not the sandbox's",
      ).toEqual([]);
      expectNoSecrets(context, seen.reads.join("\n"), "/proc/<pid>/root");
    },
  },
  {
    id: "host-files.mountinfo-sources",
    title: "host paths named in mountinfo cannot be opened inside",
    async run(context) {
      const { connection } = await context.sandbox("a");
      const seen = await context.python<{ root: string; mountpoint: string; reachable: boolean }[]>(
        connection,
        probeProgram(String.raw`
out = []
with open("/proc/self/mountinfo") as f:
    for line in f:
        fields = line.split(" - ")[0].split()
        root = fields[3].replace("\\040", " ").replace("//deleted", "")
        mountpoint = fields[4].replace("\\040", " ")
        if root in ("/", mountpoint) or root.startswith("/newroot"):
            continue
        reachable = False
        try:
            a, b = os.stat(root), os.stat(mountpoint)
            reachable = (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
        except OSError:
            pass
        out.append({"root": root, "mountpoint": mountpoint, "reachable": reachable})
emit(out)`),
      );
      // A host path that the sandbox reaches under its host name, outside the host trees it
      // shares read-only by design, is a window onto the host's layout.
      const shared = (path: string): boolean => /^\/(usr|etc)(\/|$)/.test(path);
      expect(seen.filter((mount) => mount.reachable && !shared(mount.root))).toEqual([]);
    },
  },
  {
    id: "host-files.system-trees-unchanged",
    title: "writes to /usr and /etc never reach the host's files",
    async run(context) {
      const { connection } = await context.sandbox("a");
      const name = `polydev-escape-${unique()}`;
      const created = ["/usr", "/usr/bin", "/usr/local/bin", "/usr/lib", "/etc", "/bin", "/lib"].map(
        (dir) => `${dir}/${name}`,
      );
      const existing = ["/etc/passwd", "/etc/group", "/etc/hosts", "/etc/resolv.conf", "/usr/bin/env"];
      const identities = await Promise.all(
        existing.map(async (path) => {
          const info = await stat(path).catch(() => undefined);
          return info ? { path, dev: info.dev, ino: info.ino } : undefined;
        }),
      );
      const seen = await context.python<{ created: string[]; hostFilesWritable: string[] }>(
        connection,
        probeProgram(`
made = []
for path in ARG["created"]:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.close(fd)
        made.append(path)
    except OSError:
        pass
writable = []
for host in ARG["identities"]:
    if host is None:
        continue
    try:
        fd = os.open(host["path"], os.O_WRONLY | os.O_APPEND)
    except OSError:
        continue
    st = os.fstat(fd)
    os.close(fd)
    if (st.st_dev, st.st_ino) == (host["dev"], host["ino"]):
        writable.append(host["path"])
for path in made:
    try:
        os.unlink(path)
    except OSError:
        pass
emit({"created": made, "hostFilesWritable": writable})`),
        { created, identities },
      );
      expect(seen.hostFilesWritable, "host files opened for writing inside").toEqual([]);
      const onHost = await Promise.all(
        created.map(async (path) => ((await stat(path).catch(() => null)) ? path : "")),
      );
      await Promise.all(onHost.filter(Boolean).map((path) => rm(path, { force: true })));
      expect(onHost.filter(Boolean), "files created inside that appeared on the host").toEqual([]);
      expect(
        seen.created.filter((path) => path.startsWith("/usr")),
        "the shared /usr is writable inside",
      ).toEqual([]);
    },
  },
  {
    id: "host-files.files-api-absolute-path",
    title: "the files API refuses absolute paths, and never writes outside the home",
    async run(context) {
      const { connection } = await context.sandbox("a");
      const name = `polydev-abs-${unique()}`;
      for (const path of [
        "/etc/shadow",
        "/etc/passwd",
        `/root/${context.canaryName}`,
        ...context.secretPaths(),
      ]) {
        const read = await readThroughFilesApi(connection, path);
        if (read.ok) expectNoSecrets(context, read.value, `files.read(${path})`);
        const listed = await outcome(connection.files.list(path));
        if (listed.ok) expectNoSecrets(context, JSON.stringify(listed.value), `files.list(${path})`);
      }
      const write = await outcome(connection.files.write(`/tmp/${name}`, Readable.from([Buffer.from("x")])));
      expect(write.ok, "files.write of an absolute path was accepted").toBe(false);
      const mkdir = await outcome(connection.files.mkdir(`/tmp/${name}-dir`));
      expect(mkdir.ok, "files.mkdir of an absolute path was accepted").toBe(false);
      const inside = await context.sh(connection, `ls -d /tmp/${name}* 2>/dev/null; echo end`);
      expect(inside.stdout).toBe("end\n");
      expect(await stat(`/tmp/${name}`).catch(() => null)).toBeNull();
    },
  },
  {
    id: "host-files.files-api-dotdot",
    title: "the files API refuses paths that climb out of the home",
    async run(context) {
      const { connection } = await context.sandbox("a");
      const name = `polydev-dotdot-${unique()}`;
      const climbing = ["..", "../..", "../../etc/shadow", "a/../../etc/passwd", "./../x", "a/..//../etc"];
      for (const path of climbing) {
        const read = await readThroughFilesApi(connection, path);
        expect(read.ok, `files.read(${path}) was accepted`).toBe(false);
        const listed = await outcome(connection.files.list(path));
        expect(listed.ok, `files.list(${path}) was accepted`).toBe(false);
        const removed = await outcome(connection.files.remove(`${path}/${name}`));
        expect(removed.ok, `files.remove(${path}/…) was accepted`).toBe(false);
      }
      for (const path of [`../${name}`, `../../tmp/${name}`, `x/../../${name}`]) {
        const write = await outcome(connection.files.write(path, Readable.from([Buffer.from("x")])));
        expect(write.ok, `files.write(${path}) was accepted`).toBe(false);
        const mkdir = await outcome(connection.files.mkdir(path, { parents: true }));
        expect(mkdir.ok, `files.mkdir(${path}) was accepted`).toBe(false);
      }
      const inside = await context.sh(
        connection,
        `find / \\( -path /proc -o -path /sys -o -path /usr \\) -prune -o -name '${name}*' -print 2>/dev/null; echo end`,
      );
      expect(inside.stdout).toBe("end\n");
    },
  },
  {
    id: "host-files.files-api-symlink-read",
    title: "files.read of a symlink to a host secret returns nothing of the host",
    async run(context) {
      const { connection } = await context.sandbox("a");
      const links: Record<string, string> = {
        "esc-l-shadow": "/etc/shadow",
        "esc-l-proc-shadow": "/proc/1/root/etc/shadow",
        "esc-l-self-root-shadow": "/proc/self/root/etc/shadow",
      };
      context.secretPaths().forEach((path, index) => {
        links[`esc-l-secret-${index}`] = `${path}/${context.canaryName}`;
        links[`esc-l-secret-file-${index}`] = path;
      });
      await makeLinks(context, connection, links);
      for (const name of Object.keys(links)) {
        const read = await readThroughFilesApi(connection, name);
        if (read.ok) expectNoSecrets(context, read.value, `files.read(${name} -> ${links[name]})`);
        const info = await outcome(connection.files.stat(name));
        if (info.ok) expectNoSecrets(context, JSON.stringify(info.value), `files.stat(${name})`);
      }
    },
  },
  {
    id: "host-files.files-api-symlink-dir",
    title: "files.list and files.read through a symlinked directory stay in the sandbox",
    async run(context) {
      const { connection } = await context.sandbox("a");
      const links: Record<string, string> = { "esc-d-slash": "/", "esc-d-proc1": "/proc/1/root" };
      context.secretDirs().forEach((dir, index) => {
        links[`esc-d-secret-${index}`] = dir;
      });
      await makeLinks(context, connection, links);
      const attempts = [
        "esc-d-slash/root",
        "esc-d-slash/etc/shadow",
        "esc-d-proc1/root",
        ...context
          .secretDirs()
          .flatMap((dir, index) => [
            `esc-d-secret-${index}`,
            `esc-d-secret-${index}/${context.canaryName}`,
            `esc-d-slash${dir}`,
            `esc-d-slash${dir}/${context.canaryName}`,
          ]),
      ];
      for (const path of attempts) {
        const listed = await outcome(connection.files.list(path));
        if (listed.ok) expectNoSecrets(context, JSON.stringify(listed.value), `files.list(${path})`);
        const read = await readThroughFilesApi(connection, path);
        if (read.ok) expectNoSecrets(context, read.value, `files.read(${path})`);
      }
    },
  },
  {
    id: "host-files.files-api-symlink-proc",
    title: "files.read of a symlink into /proc shows no host environment or descriptor",
    async run(context) {
      const { connection } = await context.sandbox("a");
      const links: Record<string, string> = {
        "esc-p-self-environ": "/proc/self/environ",
        "esc-p-1-environ": "/proc/1/environ",
        "esc-p-self-cmdline": "/proc/self/cmdline",
        "esc-p-1-fd-2": "/proc/1/fd/2",
      };
      for (let fd = 0; fd < 12; fd += 1) links[`esc-p-self-fd-${fd}`] = `/proc/self/fd/${fd}`;
      await makeLinks(context, connection, links);
      for (const name of Object.keys(links)) {
        const read = await readThroughFilesApi(connection, name);
        if (!read.ok) continue;
        expectNoSecrets(context, read.value, `files.read(${name} -> ${links[name]})`);
        expect(read.value, `files.read(${name}) shows the host's environment`).not.toMatch(
          /NODE_EXTRA_CA_CERTS=|VITEST|POLYDEV_(?!GATEWAY_URL)[A-Z_]+=/,
        );
      }
    },
  },
  {
    id: "host-files.files-api-write-symlinked-parent",
    title: "files.write and mkdir under a symlinked directory never reach the host",
    async run(context) {
      const { connection } = await context.sandbox("a");
      await withHostTarget(async (dir) => {
        const links: Record<string, string> = { "esc-w-host": dir, "esc-w-tmp": "/tmp" };
        context.secretDirs().forEach((secret, index) => {
          links[`esc-w-secret-${index}`] = secret;
        });
        await makeLinks(context, connection, links);
        const name = `pwned-${unique()}`;
        for (const link of Object.keys(links)) {
          await outcome(connection.files.write(`${link}/${name}`, Readable.from([Buffer.from("pwned\n")])));
          await outcome(connection.files.mkdir(`${link}/${name}-dir`, { parents: true }));
        }
        expect(await readdir(dir), "files written into a root-only host directory").toEqual(["original.txt"]);
        for (const secret of context.secretDirs()) {
          const entries = await readdir(secret).catch(() => [] as string[]);
          expect(
            entries.filter((entry) => entry.startsWith(name)),
            `written into ${secret}`,
          ).toEqual([]);
        }
        const host = await stat(`/tmp/${name}`).catch(() => null);
        expect(host, "written into the host's /tmp").toBeNull();
      });
    },
  },
  {
    id: "host-files.files-api-write-symlink",
    title: "files.write on a symlink to a host file replaces the link, never the host file",
    async run(context) {
      const { connection } = await context.sandbox("a");
      await withHostTarget(async (dir, file) => {
        await makeLinks(context, connection, {
          "esc-wl-file": file,
          "esc-wl-new": join(dir, "created.txt"),
          "esc-wl-proc": `/proc/1/root${file}`,
        });
        for (const link of ["esc-wl-file", "esc-wl-new", "esc-wl-proc"]) {
          await outcome(
            connection.files.write(link, Readable.from([Buffer.from("pwned\n")]), { mode: 0o777 }),
          );
        }
        expect(await readFile(file, "utf8")).toBe("original host content\n");
        expect((await stat(file)).mode & 0o777).toBe(0o600);
        expect(await readdir(dir)).toEqual(["original.txt"]);
      });
    },
  },
  {
    id: "host-files.files-api-remove-through-symlink",
    title: "files.remove through a symlink never deletes a host file",
    async run(context) {
      const { connection } = await context.sandbox("a");
      await withHostTarget(async (dir, file) => {
        const links: Record<string, string> = { "esc-r-host": dir, "esc-r-file": file };
        context.secretDirs().forEach((secret, index) => {
          links[`esc-r-secret-${index}`] = secret;
        });
        await makeLinks(context, connection, links);
        await outcome(connection.files.remove("esc-r-host/original.txt"));
        await outcome(connection.files.remove("esc-r-file"));
        for (const index of context.secretDirs().keys()) {
          await outcome(connection.files.remove(`esc-r-secret-${index}/${context.canaryName}`));
          await outcome(connection.files.remove(`esc-r-secret-${index}`, { recursive: true }));
        }
        await outcome(connection.files.remove("esc-r-host", { recursive: true }));
        expect(await readFile(file, "utf8")).toBe("original host content\n");
        for (const secret of context.secretDirs()) {
          expect(await readFile(join(secret, context.canaryName), "utf8")).toBe(context.canaryText);
        }
      });
    },
  },
  {
    id: "host-files.hardlinks",
    title: "no hard link to a file of a shared host filesystem can be made",
    async run(context) {
      const { connection } = await context.sandbox("a");
      const seen = await context.python<{ linked: string[]; home: string }>(
        connection,
        probeProgram(`
PRIVATE_FS = ("tmpfs", "devpts", "mqueue", "proc", "ramfs")
shared_devs = set()
with open("/proc/self/mountinfo") as f:
    for line in f:
        left, _, right = line.partition(" - ")
        fields = left.split()
        if right.split()[0] not in PRIVATE_FS:
            try:
                shared_devs.add(os.stat(fields[4]).st_dev)
            except OSError:
                pass
sources = []
for top in ("/etc", "/usr/bin", "/usr/sbin", "/usr/lib", "/run", "/bin"):
    try:
        for name in os.listdir(top)[:200]:
            path = os.path.join(top, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if st.st_dev in shared_devs and not os.path.islink(path) and os.path.isfile(path):
                sources.append(path)
    except OSError:
        pass
linked = []
home = os.environ.get("HOME", "/tmp")
for target_dir in (home, "/tmp", "/var/tmp", "/run", "/dev/shm"):
    for index, source in enumerate(sources):
        target = os.path.join(target_dir, ".polydev-hardlink-%d" % index)
        try:
            os.link(source, target)
            linked.append("%s -> %s" % (target, source))
            os.unlink(target)
        except OSError:
            pass
emit({"linked": linked, "home": home, "sources": len(sources)})`),
      );
      expect(seen.linked, "hard links to host files").toEqual([]);
    },
  },
];
