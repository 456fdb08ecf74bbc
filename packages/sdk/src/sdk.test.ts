import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import type { FakeProviders } from "@polydev/fake-providers";
import { startFakeProviders } from "@polydev/fake-providers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TestServer } from "../../server/src/testing/harness.js";
import { createUser, startTestServer } from "../../server/src/testing/harness.js";
import { generateTypes } from "../scripts/generate-types.js";
import { Polydev } from "./client.js";
import {
  ConflictError,
  CredentialMissingError,
  FeatureUnavailableError,
  InvalidRequestError,
  NameTakenError,
  NotFoundError,
  PathOutsideHomeError,
  UnauthorizedError,
} from "./errors.js";

let fake: FakeProviders;
let t: TestServer;
let polydev: Polydev;

beforeAll(async () => {
  fake = await startFakeProviders();
  t = await startTestServer({ upstreams: { anthropic: fake.url, openai: fake.url, gemini: fake.url } });
  const user = await createUser(t.api, "sdk-user");
  polydev = new Polydev({ baseUrl: t.url, apiKey: user.key });
});
afterAll(async () => {
  await t?.close();
  await fake?.close();
});

describe("the TypeScript SDK against a real server", () => {
  it("has types generated from the server's current route schemas", async () => {
    const committed = await readFile(resolve(import.meta.dirname, "api-types.ts"), "utf8");
    expect(committed).toBe(await generateTypes());
  });

  it("creates a sandbox, runs commands, streams output, and moves files", async () => {
    expect((await polydev.me()).name).toBe("sdk-user");
    const box = await polydev.sandboxes.create({ memoryMb: 256 });
    expect(box.state).toBe("running");
    const result = await polydev.sandboxes.exec(box.id, { cmd: "echo hi; exit 3" });
    expect(result).toMatchObject({ stdout: "hi\n", exitCode: 3 });

    const events = [];
    for await (const event of polydev.sandboxes.execStream(box.id, { cmd: "echo a; echo b >&2" }))
      events.push(event);
    expect(events).toEqual(
      expect.arrayContaining([
        { type: "stdout", data: "a\n" },
        { type: "stderr", data: "b\n" },
        expect.objectContaining({ type: "exit", exitCode: 0 }),
      ]),
    );

    await polydev.sandboxes.writeFile(box.id, "dir/note.txt", "from the sdk\n");
    const text = await new Response(await polydev.sandboxes.readFile(box.id, "dir/note.txt")).text();
    expect(text).toBe("from the sdk\n");
    expect((await polydev.sandboxes.listFiles(box.id, "dir")).items.map((f) => f.name)).toEqual(["note.txt"]);
    await polydev.sandboxes.destroy(box.id);
  });

  it("maps error codes to classes in one place", async () => {
    await expect(polydev.sandboxes.get("sbx_missing")).rejects.toBeInstanceOf(NotFoundError);
    // No credential stored yet: the run is refused before anything starts.
    const noKey = polydev.runs.create({ agent: "codex", prompt: "say hello" });
    await expect(noKey).rejects.toBeInstanceOf(CredentialMissingError);
    await expect(noKey).rejects.toMatchObject({ status: 422, providers: ["openai"] });
    const box = await polydev.sandboxes.create();
    await expect(polydev.sandboxes.readFile(box.id, "../etc/passwd")).rejects.toBeInstanceOf(
      PathOutsideHomeError,
    );
    const stranger = new Polydev({ baseUrl: t.url, apiKey: "pdk_wrong" });
    await expect(stranger.me()).rejects.toMatchObject({ code: "unauthorized", status: 401 });
    await expect(stranger.me()).rejects.toBeInstanceOf(UnauthorizedError);
    const aborted = new AbortController();
    aborted.abort();
    await expect(polydev.sandboxes.list({ signal: aborted.signal })).rejects.toThrow();
  });

  it("names sandboxes, and stops, starts, grows, forks and snapshots them (or says the driver cannot)", async () => {
    const box = await polydev.sandboxes.create({ name: "sdk-named", diskMb: 256 });
    expect(box.name).toBe("sdk-named");
    expect((await polydev.sandboxes.get("sdk-named")).id).toBe(box.id);
    const taken = polydev.sandboxes.create({ name: "sdk-named" });
    await expect(taken).rejects.toBeInstanceOf(NameTakenError);
    await expect(taken).rejects.toBeInstanceOf(ConflictError);
    await expect(polydev.sandboxes.update(box.id, { diskMb: 128 })).rejects.toBeInstanceOf(
      InvalidRequestError,
    );

    const { features } = await t.server.driver.probe();
    if (features.includes("durable")) {
      expect((await polydev.sandboxes.stop("sdk-named")).state).toBe("stopped");
      expect((await polydev.sandboxes.start("sdk-named")).state).toBe("running");
      expect((await polydev.sandboxes.update(box.id, { diskMb: 512 })).diskMb).toBe(512);
    } else {
      await expect(polydev.sandboxes.stop(box.id)).rejects.toBeInstanceOf(FeatureUnavailableError);
      await expect(polydev.sandboxes.update(box.id, { diskMb: 512 })).rejects.toMatchObject({
        code: "feature_unavailable",
        details: { feature: "durable" },
      });
    }
    if (features.includes("fork")) {
      const forks = await polydev.sandboxes.fork(box.id, { count: 2 });
      expect(forks.map((f) => f.state)).toEqual(["running", "running"]);
      for (const f of forks) await polydev.sandboxes.destroy(f.id);
    } else {
      await expect(polydev.sandboxes.fork(box.id, { count: 2 })).rejects.toBeInstanceOf(
        FeatureUnavailableError,
      );
    }
    // No image store on this server: a host-view sandbox has no disk to snapshot.
    const snapshot = polydev.sandboxes.snapshot(box.id, "alice/snap:1");
    if (features.includes("snapshot")) await expect(snapshot).rejects.toBeInstanceOf(InvalidRequestError);
    else await expect(snapshot).rejects.toBeInstanceOf(FeatureUnavailableError);
    await polydev.sandboxes.destroy(box.id);
  });

  it("lets an admin open any user's sandbox and its log, and destroy it", async () => {
    const box = await polydev.sandboxes.create({ memoryMb: 256 });
    const admin = new Polydev({ baseUrl: t.url, apiKey: t.adminKey });
    expect(await admin.admin.sandbox(box.id)).toMatchObject({ id: box.id, ownerName: "sdk-user" });
    const { items } = await admin.admin.sandboxLogs(box.id);
    expect(items[0]?.message).toMatch(/^created from /);
    expect((await admin.admin.destroySandbox(box.id)).state).toBe("destroyed");
    expect((await polydev.sandboxes.get(box.id)).state).toBe("destroyed");
    await expect(polydev.admin.sandbox(box.id)).rejects.toMatchObject({ code: "forbidden" });
  });

  it("pages through sandboxes with a cursor, and listAll follows every page", async () => {
    const created = [
      await polydev.sandboxes.create(),
      await polydev.sandboxes.create(),
      await polydev.sandboxes.create(),
    ];
    const first = await polydev.sandboxes.list({ limit: 2 });
    expect(first.items).toHaveLength(2);
    expect(first.nextCursor).toEqual(expect.any(String));
    const second = await polydev.sandboxes.list({ limit: 2, cursor: first.nextCursor ?? "" });
    const paged = [...first.items, ...second.items].map((b) => b.id);
    expect(new Set(paged).size).toBe(paged.length);
    const all: string[] = [];
    for await (const box of polydev.sandboxes.listAll({ limit: 1 })) all.push(box.id);
    for (const box of created) expect(all).toContain(box.id);
    expect(new Set(all).size).toBe(all.length);
    const destroyed = await polydev.sandboxes.list({ state: "destroyed" });
    expect(destroyed.items.every((b) => b.state === "destroyed")).toBe(true);
    for (const box of created) await polydev.sandboxes.destroy(box.id);
  });

  it.skipIf(!existsSync("/usr/local/bin/claude"))(
    "follows a run's events to the end, resuming from where it was (skipped without the CLIs)",
    async () => {
      await polydev.credentials.put("anthropic", "sk-sdk-test-key");
      const created = await polydev.runs.create({ agent: "claude", prompt: "say hello" });
      if (!("id" in created)) throw new Error("expected a single run");
      const types: string[] = [];
      for await (const event of polydev.runs.events(created.id)) types.push(event.type);
      expect(types.at(-1)).toBe("done");
      expect(types).toContain("text");
      const resumed: number[] = [];
      for await (const event of polydev.runs.events(created.id, { after: 2 })) resumed.push(event.seq);
      expect(resumed[0]).toBe(3);
      expect((await polydev.runs.get(created.id)).state).toBe("succeeded");
    },
  );
});
