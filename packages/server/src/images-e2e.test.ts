/**
 * Images end to end over HTTP, with nothing stood in: a server with images on (the storage pool,
 * the default image polydev/base built from Debian's packages, the toolbox), RUN steps executed
 * by the real runner in real sandboxes (services/sandbox-run-step.ts), and sandboxes made from
 * the default image, from a Dockerfile build, from a snapshot and by fork.
 *
 * The whole file needs root and xfsprogs (the storage pool is an XFS loop file with project
 * quotas, the default image is built by mmdebstrap); without them it is skipped, saying why.
 */
import { existsSync } from "node:fs";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { testBaseRootfs, testImagesUnavailable, testToolbox } from "@polydev/images/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import type { ApiClient, TestServer } from "./testing/harness.js";
import { createUser, IMAGE_BUILD_TIMEOUT_MS, startTestServer, waitForImage } from "./testing/harness.js";
import { file, tarOf } from "./testing/image-archives.js";

const missing = testImagesUnavailable() ?? (existsSync("/usr/sbin/mkfs.xfs") ? null : "no xfsprogs");
const SKIP = missing === null ? "" : ` (skipped: ${missing})`;

interface Sandbox {
  id: string;
  state: string;
  diskMb: number;
}
interface ErrorBody {
  error: { code: string; message: string; details?: Record<string, unknown> };
}
interface ImageBody {
  name: string;
  state: string;
  digest: string | null;
  layers: string[];
  config: { env: Record<string, string>; workdir?: string; user?: string };
  error: string | null;
  log: string;
}

let t: TestServer;
let api: ApiClient;
beforeAll(async () => {
  if (missing !== null) return;
  await Promise.all([testBaseRootfs(), testToolbox()]);
  // Reconciling often: a Dockerfile step's sandbox, which has no row, must outlive many passes.
  t = await startTestServer({ maxSandboxesPerUser: 10, reconcileIntervalMs: 200, images: { enabled: true } });
  await waitForImage(t.api, "polydev/base");
  api = await createUser(t.api, "images-e2e");
}, IMAGE_BUILD_TIMEOUT_MS);
afterAll(async () => {
  await t?.close();
});

const imagePath = (name: string) => `/v1/images/${encodeURIComponent(name)}`;

/** Polls until the image leaves `building` (no time is asserted; the test timeout bounds it). */
async function settled(name: string): Promise<ImageBody> {
  for (;;) {
    const response = await api.call<ImageBody>("GET", imagePath(name));
    if (response.status !== 200)
      throw new Error(`GET ${name}: ${response.status} ${JSON.stringify(response.body)}`);
    if (response.body.state !== "building") return response.body;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function uploadContext(name: string, context: Buffer) {
  const response = await fetch(`${api.url}/v1/images?name=${encodeURIComponent(name)}`, {
    method: "POST",
    headers: { authorization: `Bearer ${api.key}`, "content-type": "application/x-tar" },
    body: context,
  });
  return { status: response.status, body: (await response.json()) as ImageBody };
}

/** Runs `cmd` and fails loudly unless it exits 0; answers its stdout. */
async function run(id: string, cmd: string, extra: Record<string, unknown> = {}): Promise<string> {
  const response = await api.exec(id, cmd, extra);
  expect(response.status, JSON.stringify(response.body)).toBe(200);
  expect(response.body.exitCode, `${cmd}: ${response.body.stderr}`).toBe(0);
  return response.body.stdout;
}

/** Opens the sandbox's terminal, types `line` and answers the output once it shows `until`. */
async function terminal(id: string, query: string, line: string, until: RegExp): Promise<string> {
  const socket = new WebSocket(`${api.url.replace("http", "ws")}/v1/sandboxes/${id}/pty?${query}`, {
    headers: { authorization: `Bearer ${api.key}` },
  });
  try {
    return await new Promise<string>((resolve, reject) => {
      let output = "";
      socket.once("error", reject);
      socket.once("unexpected-response", (_request, response) =>
        reject(new Error(`the terminal did not open: ${response.statusCode}`)),
      );
      socket.on("message", (data: Buffer, binary: boolean) => {
        if (!binary) {
          const control = JSON.parse(data.toString("utf8")) as { type: string; message?: string };
          if (control.type === "ready") socket.send(JSON.stringify({ type: "input", data: `${line}\r` }));
          if (control.type === "error") reject(new Error(`terminal error: ${control.message}`));
          return;
        }
        output += data.toString("utf8");
        if (until.test(output)) resolve(output);
      });
    });
  } finally {
    socket.close();
  }
}

describe.skipIf(missing !== null)(`sandboxes from images, end to end${SKIP}`, () => {
  it("the default image: a Debian machine with user 'user', passwordless sudo, root on request, jq, node and claude", async () => {
    const id = await api.createSandbox();
    expect(await run(id, "id -un")).toBe("user\n");
    expect(await run(id, 'echo "$HOME"; pwd')).toBe("/home/user\n/home/user\n");
    expect(await run(id, "sudo -n id -u")).toBe("0\n");
    expect(await run(id, "id -u; id -un", { user: "root" })).toBe("0\nroot\n");
    // Root inside owns the whole uid range of the sandbox: chown to any uid works.
    expect(
      await run(id, "touch /tmp/owned && chown 1234:4321 /tmp/owned && stat -c %u:%g /tmp/owned", {
        user: "root",
      }),
    ).toBe("1234:4321\n");
    expect(await run(id, "dpkg -s jq")).toContain("Status: install ok installed");
    expect(await run(id, "echo '{\"a\":7}' | jq .a")).toBe("7\n");
    // The agent runtime comes from the toolbox, not the image.
    expect(await run(id, "command -v node; command -v claude")).toBe(
      "/opt/polydev/bin/node\n/opt/polydev/bin/claude\n",
    );
    expect(await run(id, "node --version")).toMatch(/^v(2\d|[3-9]\d)\.\d+\.\d+\n$/);
    expect(await run(id, "claude --version")).toMatch(/\d+\.\d+\.\d+/);

    // A terminal as root, and one as the default user.
    expect(await terminal(id, "user=root", 'echo "uid=$(id -u)"', /uid=\d+/)).toMatch(/uid=0\b/);
    expect(await terminal(id, "", 'echo "who=$(id -un)"', /who=\w+/)).toMatch(/who=user\b/);
    await api.call("DELETE", `/v1/sandboxes/${id}`);
  });

  it("builds a Dockerfile FROM polydev/base (RUN in a real sandbox, ENV, WORKDIR, COPY, USER), starts a sandbox from it, rebuilds from cache", async () => {
    const dockerfile = [
      "FROM polydev/base",
      // FROM a system image, steps run as root until a USER line (polydev/base's "user" is its
      // sandboxes' default user, not its builder).
      "RUN id -un > /home/user/first-run-as && apt-mark hold jq >/dev/null && sleep 1",
      "USER root",
      "RUN echo hi > /etc/built && useradd -m bob && echo built-by-$(id -un)",
      "ENV GREETING=hello",
      "WORKDIR /srv/app",
      "COPY app.txt /srv/app/app.txt",
      "USER bob",
      "RUN id -un > /home/bob/ran-as && pwd > /home/bob/ran-in && echo $GREETING > /home/bob/env",
    ].join("\n");
    const lines = dockerfile.split("\n");
    const context = await tarOf([file("Dockerfile", dockerfile), file("app.txt", "from the context\n")]);
    const started = await uploadContext("e2e/app:1", context);
    expect(started.status, JSON.stringify(started.body)).toBe(202);
    expect(started.body.state).toBe("building");
    const built = await settled("e2e/app:1");
    expect(built.error, built.log).toBeNull();
    expect(built.state).toBe("ready");
    expect(built.digest).toMatch(/^sha256:/);
    expect(built.config).toMatchObject({ env: { GREETING: "hello" }, workdir: "/srv/app", user: "bob" });
    for (const [n, line] of lines.entries())
      expect(built.log).toContain(`Step ${n + 1}/${lines.length} : ${line}`);
    // The RUN's own output is in the log, and it ran as the USER in effect.
    expect(built.log).toContain("built-by-root");

    const id = await api.createSandbox({ image: "e2e/app:1" });
    expect(await run(id, "cat /etc/built /srv/app/app.txt")).toBe("hi\nfrom the context\n");
    expect(await run(id, "cat /home/user/first-run-as")).toBe("root\n");
    // The last RUN ran as bob in WORKDIR with ENV, and its files are in the image.
    expect(await run(id, "cat /home/bob/ran-as /home/bob/ran-in /home/bob/env")).toBe(
      "bob\n/srv/app\nhello\n",
    );
    // A sandbox of the image runs commands as its USER.
    expect(await run(id, "id -un")).toBe("bob\n");
    await api.call("DELETE", `/v1/sandboxes/${id}`);

    // The same context again: every layer step is taken from the cache, the digest is the same.
    const again = await uploadContext("e2e/app:1", context);
    expect(again.status).toBe(202);
    const rebuilt = await settled("e2e/app:1");
    expect(rebuilt.state).toBe("ready");
    expect(rebuilt.digest).toBe(built.digest);
    expect(rebuilt.log.match(/ ---> using cache/g)).toHaveLength(4);
    expect(rebuilt.log).not.toMatch(/ ---> [0-9a-f]{12}/);
    // The RUN sandboxes' snapshots were taken into the image's layers and left nothing behind.
    const pool = t.server.storage?.root ?? "";
    expect((await readdir(join(pool, "layers"))).filter((name) => name.startsWith("run-"))).toEqual([]);
  });

  it("a sandbox of a built image runs commands with the image's ENV, in its WORKDIR, with its USER's HOME", async () => {
    const started = await api.call<ImageBody>("POST", "/v1/images", {
      name: "e2e/config:1",
      dockerfile: [
        "FROM polydev/base",
        "USER root",
        "RUN mkdir -p /srv/work && useradd -m carl",
        "ENV GREETING=hello",
        "WORKDIR /srv/work",
        "USER carl",
      ].join("\n"),
    });
    expect(started.status).toBe(202);
    const built = await settled("e2e/config:1");
    expect(built.error, built.log).toBeNull();
    const id = await api.createSandbox({ image: "e2e/config:1" });
    const seen = {
      user: await run(id, "id -un"),
      env: await run(id, 'echo "$GREETING"'),
      cwd: await run(id, "pwd"),
      home: await run(id, 'echo "$HOME"'),
    };
    await api.call("DELETE", `/v1/sandboxes/${id}`);
    expect(seen).toEqual({ user: "carl\n", env: "hello\n", cwd: "/srv/work\n", home: "/home/carl\n" });
  });

  it("a failing RUN fails the build with its step and output, and leaves no image to start from", async () => {
    const started = await api.call<ImageBody>("POST", "/v1/images", {
      name: "e2e/broken:1",
      dockerfile: "FROM polydev/base\nRUN echo step-two-ok\nRUN echo about-to-fail && ls /no-such-dir\n",
    });
    expect(started.status).toBe(202);
    const failed = await settled("e2e/broken:1");
    expect(failed.state).toBe("failed");
    expect(failed.digest).toBeNull();
    expect(failed.error).toMatch(/step 3\/3 \(line 3\) failed: RUN echo about-to-fail && ls \/no-such-dir/);
    expect(failed.log).toContain("step-two-ok");
    expect(failed.log).toContain("about-to-fail");
    expect(failed.log).toContain("No such file or directory");
    const create = await api.call<ErrorBody>("POST", "/v1/sandboxes", { image: "e2e/broken:1" });
    expect(create.status).toBeGreaterThanOrEqual(400);
    expect(create.status).toBeLessThan(500);
  });

  it("a snapshot becomes an image others start from; the source keeps running; an image in use is not deleted", async () => {
    const source = await api.createSandbox();
    await run(
      source,
      "echo snapped > /home/user/snap.txt && sudo sh -c 'echo root-file > /etc/snap-root' && sync",
    );
    const snap = await api.call<ImageBody>("POST", `/v1/sandboxes/${source}/snapshots`, {
      name: "e2e/snap:1",
    });
    expect(snap.status, JSON.stringify(snap.body)).toBe(201);
    expect((await api.call<Sandbox>("GET", `/v1/sandboxes/${source}`)).body.state).toBe("running");
    await run(source, "echo after > /home/user/after.txt");

    const copy = await api.createSandbox({ image: "e2e/snap:1" });
    expect(await run(copy, "cat /home/user/snap.txt /etc/snap-root")).toBe("snapped\nroot-file\n");
    // What the source wrote after the snapshot is not in it.
    expect(await run(copy, "test -e /home/user/after.txt && echo there || echo absent")).toBe("absent\n");
    expect(await run(source, "cat /home/user/snap.txt /home/user/after.txt")).toBe("snapped\nafter\n");

    const refused = await api.call<ErrorBody>("DELETE", imagePath("e2e/snap:1"));
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe("image_in_use");
    await api.call("DELETE", `/v1/sandboxes/${copy}`);
    expect((await api.call("DELETE", imagePath("e2e/snap:1"))).status).toBe(204);
    await api.call("DELETE", `/v1/sandboxes/${source}`);
  });

  it("fork makes two copies of an image sandbox's disk that then diverge", async () => {
    const source = await api.createSandbox();
    await run(source, "echo shared > shared.txt && sudo apt-mark hold jq >/dev/null && sync");
    const forked = await api.call<{ sandboxes: Sandbox[] }>("POST", `/v1/sandboxes/${source}/fork`, {
      count: 2,
    });
    expect(forked.status, JSON.stringify(forked.body)).toBe(201);
    const [a, b] = forked.body.sandboxes.map((s) => s.id);
    if (a === undefined || b === undefined) throw new Error("fork answered fewer than 2 sandboxes");
    for (const fork of [a, b]) {
      expect(await run(fork, "cat shared.txt; apt-mark showhold")).toBe("shared\njq\n");
    }
    await run(a, "echo only-a > mine.txt && sudo touch /etc/only-a");
    await run(b, "echo only-b > mine.txt");
    expect(await run(a, "cat mine.txt; ls /etc/only-a")).toBe("only-a\n/etc/only-a\n");
    expect(await run(b, "cat mine.txt; test -e /etc/only-a && echo leaked || echo clean")).toBe(
      "only-b\nclean\n",
    );
    expect(await run(source, "test -e mine.txt && echo leaked || echo clean")).toBe("clean\n");
    for (const id of [source, a, b]) await api.call("DELETE", `/v1/sandboxes/${id}`);
  });

  it("refuses a disk smaller than the image with 400 and the minimum; a full disk is ENOSPC inside only", async () => {
    const small = await api.call<ErrorBody>("POST", "/v1/sandboxes", { diskMb: 64 });
    expect(small.status).toBe(400);
    expect(small.body.error.code).toBe("invalid_request");
    expect(small.body.error.message).toContain("polydev/base");
    const minimum = small.body.error.details?.minimum;
    expect(typeof minimum).toBe("number");
    expect(small.body.error.message).toContain(`at least ${minimum}`);

    const id = await api.createSandbox({ diskMb: minimum });
    const neighbour = await api.createSandbox();
    const fill = await api.exec(id, "dd if=/dev/zero of=big bs=1M count=256 2>&1; echo dd=$?");
    expect(fill.status).toBe(200);
    expect(fill.body.stdout).toContain("No space left on device");
    expect(fill.body.stdout).not.toContain("dd=0");
    // The sandbox itself still works and frees its space; the neighbour and the server never noticed.
    expect(await run(id, "rm big && echo freed > small.txt && cat small.txt")).toBe("freed\n");
    expect(await run(neighbour, "head -c 32M /dev/zero > big && stat -c %s big")).toBe(
      `${32 * 1024 * 1024}\n`,
    );
    expect((await api.call("GET", "/healthz")).status).toBe(200);
    for (const s of [id, neighbour]) await api.call("DELETE", `/v1/sandboxes/${s}`);
  });

  it("answers a clear 4xx for an image that does not exist and a command failure for a user that does not", async () => {
    const unknown = await api.call<ErrorBody>("POST", "/v1/sandboxes", { image: "e2e/no-such-image:1" });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe("not_found");
    expect(unknown.body.error.message).toContain("e2e/no-such-image:1");

    const id = await api.createSandbox();
    const nobody = await api.exec(id, "id", { user: "nosuchuser" });
    // The command fails (126, as a shell's "cannot execute"), saying why; not a 500.
    expect(nobody.status, JSON.stringify(nobody.body)).toBe(200);
    expect(nobody.body.exitCode).toBe(126);
    expect(nobody.body.stderr).toBe("polydev: there is no user nosuchuser in this sandbox\n");
    await api.call("DELETE", `/v1/sandboxes/${id}`);
  });
});
