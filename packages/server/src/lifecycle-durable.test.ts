/**
 * Durable sandboxes over HTTP, against a real server and the real namespace driver: names,
 * stop and start (explicit, and implied by an exec, a file read or a terminal), the idle timeout
 * that stops instead of destroying, the inactivity period that destroys stopped sandboxes, a
 * restart and a "host reboot" (processes gone, disk kept), disk growth and fork.
 *
 * What needs a driver feature ("durable", "fork") runs only where the driver reports it; each such
 * test says so in its title. What does not (names, validation, the clear 4xx of a driver without
 * the feature) runs everywhere.
 */
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NamespaceDriver } from "@polydev/driver-namespace";
import { testBaseRootfs, testImagesUnavailable, testToolbox } from "@polydev/images/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import type { ApiClient, TestServer } from "./testing/harness.js";
import { createUser, IMAGE_BUILD_TIMEOUT_MS, startTestServer, waitForImage } from "./testing/harness.js";

// Durable sandboxes are image sandboxes on the storage pool: this file's servers have images on
// (their default image polydev/base, built once per host into the shared test cache).
const imagesMissing = testImagesUnavailable() ?? (existsSync("/usr/sbin/mkfs.xfs") ? null : "no xfsprogs");
const features = await (async () => {
  const rootDir = await mkdtemp(join(tmpdir(), "polydev-probe-"));
  try {
    return (await new NamespaceDriver({ rootDir }).probe()).features;
  } finally {
    await rm(rootDir, { recursive: true, force: true });
  }
})();
const durable = imagesMissing === null;
const forks = durable;
const NEEDS_DURABLE = durable ? "" : ' (skipped: the driver lacks the "durable" feature)';
const NEEDS_FORK = forks ? "" : ' (skipped: the driver lacks the "fork" feature)';
const ONLY_WITHOUT_DURABLE = durable ? ' (skipped: the driver has "durable")' : "";
const ONLY_WITHOUT_FORK = forks ? ' (skipped: the driver has "fork")' : "";
const allowlists = features.includes("egress-allowlist");
const NEEDS_FORK_AND_ALLOWLIST =
  forks && allowlists ? "" : ' (skipped: the driver lacks the "fork" or "egress-allowlist" feature)';

/** Days as the config takes them, for periods of seconds. */
const secondsAsDays = (seconds: number): number => seconds / 86_400;

interface Sandbox {
  id: string;
  name: string | null;
  state: string;
  diskMb: number;
  network: string;
  envKeys: string[];
  egressPolicy: unknown;
  metadata: Record<string, string>;
}
interface ErrorBody {
  error: { code: string; message: string; details?: Record<string, unknown> };
}

let t: TestServer;
let api: ApiClient;
beforeAll(async () => {
  if (durable) await Promise.all([testBaseRootfs(), testToolbox()]);
  t = await startTestServer({
    reconcileIntervalMs: 200,
    maxSandboxesPerUser: 6,
    // Long enough that no test here is swept by accident; the inactivity test has its own server.
    sandboxInactiveDestroyDays: 1,
    images: { enabled: durable },
  });
  if (durable) await waitForImage(t.api, "polydev/base");
  api = await createUser(t.api, "durable-user");
}, IMAGE_BUILD_TIMEOUT_MS);
afterAll(async () => {
  await t?.close();
});

async function waitForState(client: ApiClient, id: string, state: string, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const response = await client.call<Sandbox>("GET", `/v1/sandboxes/${id}`);
    if (response.body.state === state) return response.body;
    if (Date.now() > deadline) throw new Error(`${id} is still ${response.body.state}, not ${state}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function logText(client: ApiClient, id: string): Promise<string> {
  const logs = await client.call<{ items: { message: string }[] }>("GET", `/v1/sandboxes/${id}/logs`);
  return logs.body.items.map((l) => l.message).join("\n");
}

describe("sandbox names", () => {
  it("names a sandbox on create, shows the name, and takes it wherever the id is taken", async () => {
    const created = await api.call<Sandbox>("POST", "/v1/sandboxes", { name: "named-one" });
    expect(created.status).toBe(201);
    expect(created.body.name).toBe("named-one");
    expect(created.body.id).toMatch(/^sbx_/);

    const byName = await api.call<Sandbox>("GET", "/v1/sandboxes/named-one");
    expect(byName.status).toBe(200);
    expect(byName.body.id).toBe(created.body.id);
    const exec = await api.exec("named-one", "echo hello-by-name");
    expect(exec.status).toBe(200);
    expect(exec.body.stdout).toBe("hello-by-name\n");
    const list = await api.call<{ items: Sandbox[] }>("GET", "/v1/sandboxes");
    expect(list.body.items.find((s) => s.id === created.body.id)?.name).toBe("named-one");

    // An unnamed sandbox answers null, and two unnamed ones never collide.
    const unnamed = await api.call<Sandbox>("POST", "/v1/sandboxes", {});
    expect(unnamed.body.name).toBeNull();
    await api.call("DELETE", `/v1/sandboxes/${unnamed.body.id}`);
    expect((await api.call("DELETE", "/v1/sandboxes/named-one")).status).toBe(200);
    expect((await api.call<Sandbox>("GET", `/v1/sandboxes/${created.body.id}`)).body.state).toBe("destroyed");
  });

  it("refuses a name the user already holds with 409 name_taken, and frees it on destroy", async () => {
    const first = await api.createSandbox({ name: "taken" });
    const again = await api.call<ErrorBody>("POST", "/v1/sandboxes", { name: "taken" });
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe("name_taken");
    expect(again.body.error.message).toContain('"taken"');

    // Names are per user: another user may hold the same one, and cannot see this one by it.
    const other = await createUser(t.api, "durable-other");
    const theirs = await other.call<Sandbox>("POST", "/v1/sandboxes", { name: "taken" });
    expect(theirs.status).toBe(201);
    expect(theirs.body.id).not.toBe(first);
    expect((await other.call<Sandbox>("GET", "/v1/sandboxes/taken")).body.id).toBe(theirs.body.id);
    await other.call("DELETE", `/v1/sandboxes/${theirs.body.id}`);

    await api.call("DELETE", `/v1/sandboxes/${first}`);
    const reused = await api.call<Sandbox>("POST", "/v1/sandboxes", { name: "taken" });
    expect(reused.status).toBe(201);
    expect((await api.call<Sandbox>("GET", "/v1/sandboxes/taken")).body.id).toBe(reused.body.id);
    await api.call("DELETE", `/v1/sandboxes/${reused.body.id}`);
  });

  it("answers 400 with the rule for a name that is not 1–63 lowercase letters, digits and '-'", async () => {
    for (const name of ["", "Upper", "under_score", "-leading", "a".repeat(64), "dot.name", "space name"]) {
      const response = await api.call<ErrorBody>("POST", "/v1/sandboxes", { name });
      expect(response.status, name).toBe(400);
      expect(response.body.error.code, name).toBe("invalid_request");
      expect(response.body.error.message, name).toContain("lowercase");
    }
    expect((await api.call("GET", "/v1/sandboxes/no-such-name")).status).toBe(404);
  });
});

describe("bad input to the durable operations (any driver)", () => {
  it("refuses a disk shrink with 400 naming the current size, and bad PATCH and fork bodies", async () => {
    const id = await api.createSandbox({ diskMb: 600 });
    const shrink = await api.call<ErrorBody>("PATCH", `/v1/sandboxes/${id}`, { diskMb: 500 });
    expect(shrink.status).toBe(400);
    expect(shrink.body.error.message).toContain("only grow");
    expect(shrink.body.error.message).toContain("600");
    // The same size is nothing to do.
    const same = await api.call<Sandbox>("PATCH", `/v1/sandboxes/${id}`, { diskMb: 600 });
    expect(same.status).toBe(200);
    expect(same.body.diskMb).toBe(600);
    for (const body of [{}, { diskMb: "big" }, { diskMb: 10_000_000 }, { diskMb: 512, cpu: 2 }]) {
      const response = await api.call<ErrorBody>("PATCH", `/v1/sandboxes/${id}`, body);
      expect(response.status, JSON.stringify(body)).toBe(400);
    }
    for (const body of [
      { count: 0 },
      { count: 17 },
      { count: 2, names: ["only-one"] },
      { count: 2, names: ["same", "same"] },
      { count: 1, names: ["Bad_Name"] },
      { count: 1, extra: true },
    ]) {
      const response = await api.call<ErrorBody>("POST", `/v1/sandboxes/${id}/fork`, body);
      expect(response.status, JSON.stringify(body)).toBe(400);
      expect(response.body.error.code).toBe("invalid_request");
    }
    await api.call("DELETE", `/v1/sandboxes/${id}`);
  });

  it("answers 404 for another user's sandbox on stop, start, PATCH and fork", async () => {
    const id = await api.createSandbox();
    const stranger = await createUser(t.api, "durable-stranger");
    for (const [method, path, body] of [
      ["POST", `/v1/sandboxes/${id}/stop`, undefined],
      ["POST", `/v1/sandboxes/${id}/start`, undefined],
      ["PATCH", `/v1/sandboxes/${id}`, { diskMb: 4096 }],
      ["POST", `/v1/sandboxes/${id}/fork`, { count: 1 }],
    ] as const) {
      expect((await stranger.call(method, path, body)).status, `${method} ${path}`).toBe(404);
    }
    expect((await api.call<Sandbox>("GET", `/v1/sandboxes/${id}`)).body.state).toBe("running");
    await api.call("DELETE", `/v1/sandboxes/${id}`);
  });

  it.skipIf(durable)(
    `answers 422 feature_unavailable to stop, start and a disk growth when the driver cannot keep disks${ONLY_WITHOUT_DURABLE}`,
    async () => {
      const id = await api.createSandbox();
      for (const [method, path, body] of [
        ["POST", `/v1/sandboxes/${id}/stop`, undefined],
        ["PATCH", `/v1/sandboxes/${id}`, { diskMb: 4096 }],
      ] as const) {
        const response = await api.call<ErrorBody>(method, path, body);
        expect(response.status, path).toBe(422);
        expect(response.body.error.code).toBe("feature_unavailable");
        expect(response.body.error.message).toContain('"durable"');
      }
      // Starting a running sandbox is nothing to do on any driver.
      expect((await api.call<Sandbox>("POST", `/v1/sandboxes/${id}/start`)).body.state).toBe("running");
      // The idle timeout still destroys on such a driver (covered in lifecycle.test.ts); nothing stopped.
      expect((await api.call<Sandbox>("GET", `/v1/sandboxes/${id}`)).body).toMatchObject({
        state: "running",
        diskMb: 1024,
      });
      await api.call("DELETE", `/v1/sandboxes/${id}`);
    },
  );

  it.skipIf(forks)(
    `answers 422 feature_unavailable to a fork when the driver cannot fork, and makes no sandbox${ONLY_WITHOUT_FORK}`,
    async () => {
      const id = await api.createSandbox();
      const before = (await api.call<{ items: Sandbox[] }>("GET", "/v1/sandboxes?limit=500")).body.items
        .length;
      const response = await api.call<ErrorBody>("POST", `/v1/sandboxes/${id}/fork`, { count: 2 });
      expect(response.status).toBe(422);
      expect(response.body.error.code).toBe("feature_unavailable");
      expect(response.body.error.message).toContain('"fork"');
      const after = (await api.call<{ items: Sandbox[] }>("GET", "/v1/sandboxes?limit=500")).body.items
        .length;
      expect(after).toBe(before);
      await api.call("DELETE", `/v1/sandboxes/${id}`);
    },
  );
});

describe("stop and start", () => {
  it.skipIf(!durable)(
    `stops a sandbox (processes end, disk kept) and starts it with its files${NEEDS_DURABLE}`,
    async () => {
      const id = await api.createSandbox({ name: "stop-start" });
      expect((await api.exec(id, "echo kept > kept.txt && sync")).status).toBe(200);
      const server = await api.call<{ id: string }>("POST", `/v1/sandboxes/${id}/processes`, {
        cmd: "sleep 1000",
      });
      expect(server.status).toBe(201);

      const stopped = await api.call<Sandbox>("POST", `/v1/sandboxes/${id}/stop`);
      expect(stopped.status).toBe(200);
      expect(stopped.body.state).toBe("stopped");
      // Idempotent, and by name too.
      expect((await api.call<Sandbox>("POST", "/v1/sandboxes/stop-start/stop")).body.state).toBe("stopped");
      expect(
        (await api.call<{ items: Sandbox[] }>("GET", "/v1/sandboxes?state=stopped")).body.items.map(
          (s) => s.id,
        ),
      ).toContain(id);
      // Hibernating a stopped sandbox is refused: there is nothing to freeze.
      expect((await api.call("POST", `/v1/sandboxes/${id}/hibernate`)).status).toBe(409);
      // Its figures are not worth starting it for; its logs are still there.
      expect((await api.call("GET", `/v1/sandboxes/${id}/stats`)).status).toBe(409);
      expect((await api.call("GET", `/v1/sandboxes/${id}/logs`)).status).toBe(200);
      expect((await api.call<Sandbox>("GET", `/v1/sandboxes/${id}`)).body.state).toBe("stopped");

      const started = await api.call<Sandbox>("POST", `/v1/sandboxes/${id}/start`);
      expect(started.status).toBe(200);
      expect(started.body.state).toBe("running");
      const read = await api.exec(id, "cat kept.txt; pgrep -x sleep || echo no-sleep");
      expect(read.body.stdout).toBe("kept\nno-sleep\n");
      // Starting a running sandbox is nothing to do.
      expect((await api.call<Sandbox>("POST", `/v1/sandboxes/${id}/start`)).body.state).toBe("running");
      const logs = await logText(api, id);
      expect(logs).toContain("stopping: stopped by its owner");
      expect(logs).toContain("started from its disk");
      await api.call("DELETE", `/v1/sandboxes/${id}`);
    },
  );

  it.skipIf(!durable)(
    `starts a stopped sandbox for an exec, a file read and a terminal${NEEDS_DURABLE}`,
    async () => {
      const id = await api.createSandbox();
      await api.exec(id, "echo via-files > f.txt && sync");

      await api.call("POST", `/v1/sandboxes/${id}/stop`);
      const exec = await api.exec(id, "cat f.txt");
      expect(exec.status).toBe(200);
      expect(exec.body.stdout).toBe("via-files\n");

      await api.call("POST", `/v1/sandboxes/${id}/stop`);
      const file = await api.call("GET", `/v1/sandboxes/${id}/files/content?path=f.txt`);
      expect(file.status).toBe(200);
      expect(String(file.body)).toContain("via-files");

      await api.call("POST", `/v1/sandboxes/${id}/stop`);
      const socket = new WebSocket(`${t.url.replace("http", "ws")}/v1/sandboxes/${id}/pty`, {
        headers: { authorization: `Bearer ${api.key}` },
      });
      await new Promise<void>((resolve, reject) => {
        socket.once("open", () => resolve());
        socket.once("error", (error) => reject(error));
        socket.once("unexpected-response", (_request, response) =>
          reject(new Error(`the terminal did not open: ${response.statusCode}`)),
        );
      });
      socket.close();
      expect((await api.call<Sandbox>("GET", `/v1/sandboxes/${id}`)).body.state).toBe("running");
      await api.call("DELETE", `/v1/sandboxes/${id}`);
    },
  );

  it.skipIf(!durable)(
    `stops (not destroys) a sandbox at its idle timeout, and the next exec brings it back${NEEDS_DURABLE}`,
    async () => {
      const id = await api.createSandbox({ idleTimeoutMs: 1500 });
      await api.exec(id, "echo idle > idle.txt && sync");
      await waitForState(api, id, "stopped");
      expect(await logText(api, id)).toContain("idle for 1500 ms");
      const exec = await api.exec(id, "cat idle.txt");
      expect(exec.body.stdout).toBe("idle\n");
      await api.call("DELETE", `/v1/sandboxes/${id}`);
    },
  );

  it.skipIf(!durable)(
    `keeps a stopped sandbox through a server restart, and stops (not fails) one whose processes died${NEEDS_DURABLE}`,
    async () => {
      const stoppedId = await api.createSandbox();
      await api.exec(stoppedId, "echo before-restart > r.txt && sync");
      await api.call("POST", `/v1/sandboxes/${stoppedId}/stop`);
      const rebootedId = await api.createSandbox();
      await api.exec(rebootedId, "echo before-reboot > r.txt && sync");
      // A host reboot, as far as this sandbox knows: every process ends, behind the server's back.
      const row = await t.server.store.sandboxes.get(rebootedId);
      if (!row?.handle || !t.server.driver.stop) throw new Error("no handle or no driver stop");
      await t.server.driver.stop(row.handle);

      await t.restart();
      // Every later test talks to the new server.
      api = t.api.withKey(api.key);
      const client = api;
      expect((await client.call<Sandbox>("GET", `/v1/sandboxes/${stoppedId}`)).body.state).toBe("stopped");
      const rebooted = await client.call<Sandbox & { failureReason: string | null }>(
        "GET",
        `/v1/sandboxes/${rebootedId}`,
      );
      expect(rebooted.body.state).toBe("stopped");
      expect(rebooted.body.failureReason).toBeNull();
      expect((await client.exec(stoppedId, "cat r.txt")).body.stdout).toBe("before-restart\n");
      expect((await client.exec(rebootedId, "cat r.txt")).body.stdout).toBe("before-reboot\n");
      await api.call("DELETE", `/v1/sandboxes/${stoppedId}`);
      await api.call("DELETE", `/v1/sandboxes/${rebootedId}`);
    },
  );

  it.skipIf(!durable)(
    `destroys a sandbox stopped for longer than the inactivity period, with its name freed${NEEDS_DURABLE}`,
    async () => {
      const short = await startTestServer({
        reconcileIntervalMs: 200,
        sandboxInactiveDestroyDays: secondsAsDays(2),
        images: { enabled: durable },
      });
      if (durable) await waitForImage(short.api, "polydev/base");
      try {
        const id = await short.api.createSandbox({ name: "short-lived" });
        await short.api.call("POST", `/v1/sandboxes/${id}/stop`);
        await waitForState(short.api, id, "destroyed");
        expect(await logText(short.api, id)).toContain("stopped for more than");
        expect((await short.api.call("POST", "/v1/sandboxes", { name: "short-lived" })).status).toBe(201);
      } finally {
        await short.close();
      }
    },
  );

  it.skipIf(!durable)(
    `counts stopped sandboxes against the user's limit and keeps their names${NEEDS_DURABLE}`,
    async () => {
      const limited = await createUser(t.api, "durable-limited");
      const ids: string[] = [];
      for (let i = 0; i < 6; i++) ids.push(await limited.createSandbox({ name: `held-${i}` }));
      for (const id of ids) await limited.call("POST", `/v1/sandboxes/${id}/stop`);
      const over = await limited.call<ErrorBody>("POST", "/v1/sandboxes", {});
      expect(over.status).toBe(429);
      expect(over.body.error.code).toBe("limit_exceeded");
      await limited.call("DELETE", `/v1/sandboxes/${ids[0]}`);
      const taken = await limited.call<ErrorBody>("POST", "/v1/sandboxes", { name: "held-1" });
      expect(taken.status).toBe(409);
      expect(taken.body.error.code).toBe("name_taken");
      for (const id of ids.slice(1)) await limited.call("DELETE", `/v1/sandboxes/${id}`);
    },
  );

  it.skipIf(!durable)(
    `grows a disk, running or stopped, and the sandbox can use the new room${NEEDS_DURABLE}`,
    async () => {
      // diskMb holds the image's ~460 MB of files too: 520 leaves less room than 80 MiB.
      const id = await api.createSandbox({ diskMb: 520 });
      const tooBig = await api.exec(id, "dd if=/dev/zero of=big bs=1M count=80 2>&1; echo rc=$?; rm -f big");
      expect(tooBig.body.stdout).not.toContain("rc=0");
      const grown = await api.call<Sandbox & ErrorBody>("PATCH", `/v1/sandboxes/${id}`, { diskMb: 620 });
      if (grown.status === 409) {
        // A host whose server may not resize a mounted file system (no CAP_SYS_RESOURCE, as on
        // the build machines) grows a disk while its sandbox is stopped, and says so.
        expect(grown.body.error.message).toMatch(/stop/);
        await api.call("POST", `/v1/sandboxes/${id}/stop`);
        const offline = await api.call<Sandbox>("PATCH", `/v1/sandboxes/${id}`, { diskMb: 620 });
        expect(offline.body).toMatchObject({ state: "stopped", diskMb: 620 });
      } else {
        expect(grown.status).toBe(200);
        expect(grown.body.diskMb).toBe(620);
      }
      const fits = await api.exec(id, "dd if=/dev/zero of=big bs=1M count=80 2>&1; echo rc=$?; rm -f big");
      expect(fits.body.stdout).toContain("rc=0");

      await api.call("POST", `/v1/sandboxes/${id}/stop`);
      const stoppedGrow = await api.call<Sandbox>("PATCH", `/v1/sandboxes/${id}`, { diskMb: 720 });
      expect(stoppedGrow.body).toMatchObject({ state: "stopped", diskMb: 720 });
      expect((await api.call<Sandbox>("GET", `/v1/sandboxes/${id}`)).body.diskMb).toBe(720);
      const shrink = await api.call<ErrorBody>("PATCH", `/v1/sandboxes/${id}`, { diskMb: 620 });
      expect(shrink.status).toBe(400);
      await api.call("DELETE", `/v1/sandboxes/${id}`);
    },
  );
});

describe("fork", () => {
  it.skipIf(!forks)(
    `makes N sandboxes with copies of the disk that then diverge, same network and env${NEEDS_FORK}`,
    async () => {
      const id = await api.createSandbox({
        name: "fork-source",
        env: { FROM_SOURCE: "yes" },
        metadata: { team: "a" },
      });
      await api.exec(id, "echo shared > shared.txt && sync");
      const forked = await api.call<{ sandboxes: Sandbox[] }>("POST", "/v1/sandboxes/fork-source/fork", {
        count: 2,
        names: ["fork-a", "fork-b"],
      });
      expect(forked.status, JSON.stringify(forked.body)).toBe(201);
      expect(forked.body.sandboxes.map((s) => s.name)).toEqual(["fork-a", "fork-b"]);
      for (const fork of forked.body.sandboxes) {
        expect(fork).toMatchObject({ state: "running", network: "none", metadata: { team: "a" } });
        expect(fork.envKeys).toContain("FROM_SOURCE");
        expect(fork.id).not.toBe(id);
        expect((await api.exec(fork.id, "cat shared.txt; echo $FROM_SOURCE")).body.stdout).toBe(
          "shared\nyes\n",
        );
      }
      await api.exec("fork-a", "echo only-a > mine.txt");
      expect((await api.exec("fork-b", "cat mine.txt 2>&1 || echo absent")).body.stdout).toContain("absent");
      expect((await api.exec(id, "cat mine.txt 2>&1 || echo absent")).body.stdout).toContain("absent");
      for (const s of [id, ...forked.body.sandboxes.map((f) => f.id)])
        await api.call("DELETE", `/v1/sandboxes/${s}`);
    },
  );

  it.skipIf(!forks)(`makes none when the user's limit or a name would be passed${NEEDS_FORK}`, async () => {
    const limited = await createUser(t.api, "fork-limited");
    const id = await limited.createSandbox();
    await limited.createSandbox({ name: "already" });
    const count = async () =>
      (await limited.call<{ items: Sandbox[] }>("GET", "/v1/sandboxes?limit=500")).body.items.length;
    const before = await count();
    // 2 held + 5 asked > 6.
    const over = await limited.call<ErrorBody>("POST", `/v1/sandboxes/${id}/fork`, { count: 5 });
    expect(over.status).toBe(429);
    expect(over.body.error.code).toBe("limit_exceeded");
    const taken = await limited.call<ErrorBody>("POST", `/v1/sandboxes/${id}/fork`, {
      count: 2,
      names: ["fresh", "already"],
    });
    expect(taken.status).toBe(409);
    expect(taken.body.error.code).toBe("name_taken");
    expect(await count()).toBe(before);
    const page = await limited.call<{ items: Sandbox[] }>("GET", "/v1/sandboxes?limit=500");
    for (const s of page.body.items) await limited.call("DELETE", `/v1/sandboxes/${s.id}`);
  });

  it.skipIf(!forks || !allowlists)(
    `forks an allow-list sandbox with its rules${NEEDS_FORK_AND_ALLOWLIST}`,
    async () => {
      const created = await api.call<Sandbox>("POST", "/v1/sandboxes", {
        network: { mode: "allowlist", allow: ["example.com"] },
      });
      expect(created.status).toBe(201);
      const forked = await api.call<{ sandboxes: Sandbox[] }>(
        "POST",
        `/v1/sandboxes/${created.body.id}/fork`,
        {
          count: 1,
        },
      );
      expect(forked.status).toBe(201);
      expect(forked.body.sandboxes[0]).toMatchObject({
        network: "allowlist",
        egressPolicy: created.body.egressPolicy,
      });
      await api.call("DELETE", `/v1/sandboxes/${created.body.id}`);
      for (const s of forked.body.sandboxes) await api.call("DELETE", `/v1/sandboxes/${s.id}`);
    },
  );
});
