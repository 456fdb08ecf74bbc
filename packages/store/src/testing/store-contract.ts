/**
 * The Store contract: every implementation (SQLite file, Postgres) runs these same cases.
 * `open` must return a store on a fresh, empty database each call; the suite closes it.
 * Times are explicit numbers, so nothing here depends on the clock.
 */
import type { NewSandbox, SessionRecord, Store } from "@polydev/core";
import { PolydevError } from "@polydev/core";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { runStoreParityCases } from "./store-contract-parity.js";
import { runWebhookStoreCases } from "./store-contract-webhooks.js";

export function runStoreContract(name: string, open: () => Promise<Store>): void {
  describe(`Store contract: ${name}`, () => {
    let store: Store;
    beforeEach(async () => {
      store = await open();
    });
    afterEach(async () => {
      await store.close();
    });

    const user = (id: string, createdAt = 1000) => ({
      id,
      name: `name-${id}`,
      role: "user" as const,
      passwordHash: null,
      createdAt,
    });
    const sandbox = (
      id: string,
      userId: string,
      createdAt: number,
      extra: Partial<NewSandbox> = {},
    ): NewSandbox => ({
      id,
      userId,
      state: "creating",
      driver: "namespace",
      cpu: 1,
      memoryMb: 512,
      diskMb: 1024,
      pidsMax: 256,
      network: "none",
      egressPolicy: null,
      env: { A: "1" },
      metadata: { m: "x" },
      timeoutMs: 60_000,
      idleTimeoutMs: 10_000,
      createdAt,
      expiresAt: createdAt + 60_000,
      ...extra,
    });

    it("creates users, refuses duplicate names with a conflict naming the field", async () => {
      await store.users.create(user("usr_1"));
      expect(await store.users.getByName("name-usr_1")).toMatchObject({ id: "usr_1", role: "user" });
      expect(await store.users.getById("usr_1")).toEqual(user("usr_1"));
      const duplicate = store.users.create({ ...user("usr_2"), name: "name-usr_1" });
      await expect(duplicate).rejects.toBeInstanceOf(PolydevError);
      await expect(duplicate).rejects.toMatchObject({
        code: "conflict",
        message: "a user with this name already exists",
        details: { fields: ["name"] },
      });
      expect(await store.users.count()).toBe(1);
      await store.users.create(user("usr_3", 500));
      expect((await store.users.list()).map((u) => u.id)).toEqual(["usr_3", "usr_1"]);
    });

    it("finds API keys by hash joined with their user, touches and deletes them", async () => {
      await store.users.create({ ...user("usr_1"), role: "admin", passwordHash: "ph" });
      const key = { id: "key_1", userId: "usr_1", name: "k", keyHash: "h1", prefix: "pdk_ab", createdAt: 5 };
      await store.apiKeys.create(key);
      const found = await store.apiKeys.findByHash("h1");
      expect(found).toEqual({
        key: { ...key, lastUsedAt: null, expiresAt: null },
        user: { ...user("usr_1"), role: "admin", passwordHash: "ph" },
      });
      await expect(store.apiKeys.create({ ...key, id: "key_2" })).rejects.toMatchObject({
        code: "conflict",
        details: { fields: ["keyHash"] },
      });
      await store.apiKeys.touch("key_1", 99);
      expect((await store.apiKeys.findByHash("h1"))?.key.lastUsedAt).toBe(99);
      expect((await store.apiKeys.listForUser("usr_1")).map((k) => k.id)).toEqual(["key_1"]);
      expect(await store.apiKeys.delete("usr_other", "key_1")).toBe(false);
      expect(await store.apiKeys.delete("usr_1", "key_1")).toBe(true);
      expect(await store.apiKeys.findByHash("h1")).toBeUndefined();
    });

    it("keeps an API key's expiry", async () => {
      await store.users.create(user("usr_1"));
      const key = { id: "key_1", userId: "usr_1", name: "k", keyHash: "h1", prefix: "pdk_ab", createdAt: 5 };
      expect(await store.apiKeys.create({ ...key, expiresAt: 2_000_000_000_000 })).toMatchObject({
        expiresAt: 2_000_000_000_000,
      });
      expect((await store.apiKeys.findByHash("h1"))?.key.expiresAt).toBe(2_000_000_000_000);
      expect((await store.apiKeys.listForUser("usr_1"))[0]?.expiresAt).toBe(2_000_000_000_000);
    });

    it("links an issuer's subject to one user, refuses a second link, and drops it with the user", async () => {
      await store.users.create(user("usr_1"));
      await store.users.create(user("usr_2"));
      await store.identities.link({ issuer: "https://idp", subject: "s1", userId: "usr_1", createdAt: 1 });
      expect(await store.identities.find("https://idp", "s1")).toEqual(user("usr_1"));
      await store.users.setRole("usr_1", "admin");
      expect(await store.identities.find("https://idp", "s1")).toMatchObject({ role: "admin" });
      expect(await store.identities.find("https://idp", "S1")).toBeUndefined();
      expect(await store.identities.find("https://other", "s1")).toBeUndefined();
      await expect(
        store.identities.link({ issuer: "https://idp", subject: "s1", userId: "usr_2", createdAt: 2 }),
      ).rejects.toMatchObject({ code: "conflict" });
    });

    it("appends audit events, pages them newest first with filters, and prunes by count and age", async () => {
      const event = (at: number, action: string, actorId: string | null) => ({
        at,
        action,
        outcome: "success" as const,
        actorId,
        actorName: actorId,
        targetType: "user",
        targetId: "usr_t",
        ip: "127.0.0.1",
        details: { method: "password", n: at, ok: true, none: null },
      });
      for (let at = 1; at <= 5; at += 1)
        await store.audit.append(event(at, at % 2 ? "sign_in" : "api_key.create", "usr_a"));
      await store.audit.append({ ...event(6, "sign_in", null), outcome: "failure" });
      const first = await store.audit.list({ limit: 4 });
      expect(first.items.map((e) => e.at)).toEqual([6, 5, 4, 3]);
      expect(first.items[1]).toMatchObject(event(5, "sign_in", "usr_a"));
      expect(first.nextCursor).toBeDefined();
      const second = await store.audit.list({ limit: 4, beforeId: Number(first.nextCursor) });
      expect(second.items.map((e) => e.at)).toEqual([2, 1]);
      expect(second.nextCursor).toBeUndefined();
      const signIns = await store.audit.list({ limit: 10, action: "sign_in", actorId: "usr_a" });
      expect(signIns.items.map((e) => e.at)).toEqual([5, 3, 1]);
      expect((await store.audit.list({ limit: 10, outcome: "failure" })).items.map((e) => e.at)).toEqual([6]);
      expect((await store.audit.list({ limit: 10, since: 2, until: 4 })).items.map((e) => e.at)).toEqual([
        3, 2,
      ]);
      expect(await store.audit.prune(4, 2)).toBe(2);
      expect((await store.audit.list({ limit: 10 })).items.map((e) => e.at)).toEqual([6, 5, 4, 3]);
    });

    it("round-trips a sandbox with its JSON fields and handle, and hides it from other users", async () => {
      await store.users.create(user("usr_1"));
      const inserted = await store.sandboxes.insert(sandbox("sbx_1", "usr_1", 1000, { cpu: 0.5 }));
      expect(inserted).toEqual({
        ...sandbox("sbx_1", "usr_1", 1000, { cpu: 0.5 }),
        name: null,
        failureReason: null,
        handle: null,
        updatedAt: 1000,
        stateChangedAt: 1000,
        lastActivityAt: 1000,
        destroyedAt: null,
        image: null,
        node: null,
      });
      await store.sandboxes.setHandle("sbx_1", {
        sandboxId: "sbx_1",
        driver: "namespace",
        data: { pid: 42, nested: { path: "/x" } },
      });
      expect((await store.sandboxes.get("sbx_1"))?.handle?.data).toEqual({ pid: 42, nested: { path: "/x" } });
      expect(await store.sandboxes.getForUser("usr_1", "sbx_1")).toBeDefined();
      expect(await store.sandboxes.getForUser("usr_2", "sbx_1")).toBeUndefined();
      await expect(store.sandboxes.insert(sandbox("sbx_1", "usr_1", 2000))).rejects.toMatchObject({
        code: "conflict",
        message: "a sandbox with this id already exists",
      });
    });

    it("transitions by compare-and-set: exactly one of two racing writers wins", async () => {
      await store.users.create(user("usr_1"));
      await store.sandboxes.insert(sandbox("sbx_1", "usr_1", 1000));
      const results = await Promise.all([
        store.sandboxes.transition("sbx_1", ["creating"], "running", { at: 2000 }),
        store.sandboxes.transition("sbx_1", ["creating"], "failed", { at: 2000, failureReason: "boom" }),
      ]);
      const winners = results.filter((r) => r !== undefined);
      expect(winners).toHaveLength(1);
      expect(await store.sandboxes.get("sbx_1")).toEqual(winners[0]);
      expect(winners[0]).toMatchObject({ stateChangedAt: 2000, updatedAt: 2000, destroyedAt: null });
      if (winners[0]?.state === "failed") expect(winners[0].failureReason).toBe("boom");

      const destroyed = await store.sandboxes.transition("sbx_1", ["running", "failed"], "destroyed", {
        at: 3000,
      });
      expect(destroyed).toMatchObject({ state: "destroyed", destroyedAt: 3000, stateChangedAt: 3000 });
      expect(await store.sandboxes.transition("sbx_1", ["running"], "failed", { at: 4000 })).toBeUndefined();
      expect(await store.sandboxes.transition("sbx_1", [], "failed", { at: 4000 })).toBeUndefined();
      expect(
        await store.sandboxes.transition("sbx_missing", ["creating"], "running", { at: 1 }),
      ).toBeUndefined();
      expect((await store.sandboxes.get("sbx_1"))?.state).toBe("destroyed");
    });

    it("pages a user's sandboxes newest first with a cursor, and filters by state", async () => {
      await store.users.create(user("usr_1"));
      await store.users.create(user("usr_2"));
      // Ties on created_at must still page without gaps or repeats: the cursor carries the id too.
      for (let i = 0; i < 5; i++) await store.sandboxes.insert(sandbox(`sbx_${i}`, "usr_1", 1000 + (i % 3)));
      await store.sandboxes.insert(sandbox("sbx_other", "usr_2", 5000));
      const pages: string[][] = [];
      let cursor: string | undefined;
      do {
        const page = await store.sandboxes.listForUser("usr_1", { limit: 2, cursor });
        pages.push(page.items.map((s) => s.id));
        cursor = page.nextCursor;
      } while (cursor);
      expect(pages).toEqual([["sbx_2", "sbx_4"], ["sbx_1", "sbx_3"], ["sbx_0"]]);
      const exact = await store.sandboxes.listForUser("usr_1", { limit: 5 });
      expect(exact.items).toHaveLength(5);
      expect(exact.nextCursor).toBeUndefined();

      // Across every user (the admin's view): the other user's newer sandbox comes first.
      const everyone: string[] = [];
      let everyoneCursor: string | undefined;
      do {
        const page = await store.sandboxes.listPage({ limit: 4, cursor: everyoneCursor });
        everyone.push(...page.items.map((s) => s.id));
        everyoneCursor = page.nextCursor;
      } while (everyoneCursor);
      expect(everyone).toEqual(["sbx_other", "sbx_2", "sbx_4", "sbx_1", "sbx_3", "sbx_0"]);

      await store.sandboxes.transition("sbx_2", ["creating"], "running", { at: 6000 });
      expect(
        (await store.sandboxes.listPage({ limit: 10, states: ["running"] })).items.map((s) => s.id),
      ).toEqual(["sbx_2"]);
      const running = await store.sandboxes.listForUser("usr_1", { limit: 10, states: ["running"] });
      expect(running.items.map((s) => s.id)).toEqual(["sbx_2"]);
      expect((await store.sandboxes.listByStates(["running", "hibernated"])).map((s) => s.id)).toEqual([
        "sbx_2",
      ]);
      expect(await store.sandboxes.listByStates([])).toEqual([]);
      expect((await store.sandboxes.listAll()).map((s) => s.id)).toEqual([
        "sbx_0",
        "sbx_3",
        "sbx_1",
        "sbx_4",
        "sbx_2",
        "sbx_other",
      ]);
      expect(await store.sandboxes.countLiveForUser("usr_1")).toBe(5);
      expect(await store.sandboxes.countByState()).toEqual({
        creating: 5,
        running: 1,
        hibernated: 0,
        stopped: 0,
        destroying: 0,
        destroyed: 0,
        failed: 0,
      });
      const byDriver = await store.sandboxes.countByStateAndDriver();
      expect(byDriver.sort((a, b) => a.state.localeCompare(b.state))).toEqual([
        { state: "creating", driver: "namespace", count: 5 },
        { state: "running", driver: "namespace", count: 1 },
      ]);
    });

    it("lists expired and idle sandboxes by explicit times", async () => {
      await store.users.create(user("usr_1"));
      const at = { at: 1500 };
      // Expires at 1000 + 60_000 = 61_000; idle after 1000 + 10_000 = 11_000 without activity.
      await store.sandboxes.insert(sandbox("sbx_run", "usr_1", 1000));
      await store.sandboxes.transition("sbx_run", ["creating"], "running", at);
      await store.sandboxes.insert(sandbox("sbx_hib", "usr_1", 1000));
      await store.sandboxes.transition("sbx_hib", ["creating"], "hibernated", at);
      await store.sandboxes.insert(sandbox("sbx_new", "usr_1", 1000));
      await store.sandboxes.insert(sandbox("sbx_late", "usr_1", 1000, { expiresAt: 90_000 }));
      await store.sandboxes.transition("sbx_late", ["creating"], "running", at);

      const ids = (rows: { id: string }[]) => rows.map((r) => r.id).sort();
      expect(await store.sandboxes.listExpired(60_999)).toEqual([]);
      expect(ids(await store.sandboxes.listExpired(61_000))).toEqual(["sbx_hib", "sbx_run"]);
      expect(ids(await store.sandboxes.listExpired(90_000))).toEqual(["sbx_hib", "sbx_late", "sbx_run"]);

      expect(await store.sandboxes.listIdle(10_999)).toEqual([]);
      expect(ids(await store.sandboxes.listIdle(11_000))).toEqual(["sbx_late", "sbx_run"]);
      await store.sandboxes.touchActivity("sbx_run", 5000);
      expect((await store.sandboxes.get("sbx_run"))?.lastActivityAt).toBe(5000);
      expect(ids(await store.sandboxes.listIdle(14_999))).toEqual(["sbx_late"]);
      expect(ids(await store.sandboxes.listIdle(15_000))).toEqual(["sbx_late", "sbx_run"]);
    });

    it("stops and starts a sandbox by compare-and-set; a stopped one counts, expires and ages by its stop time", async () => {
      await store.users.create(user("usr_1"));
      await store.sandboxes.insert(sandbox("sbx_1", "usr_1", 1000));
      await store.sandboxes.transition("sbx_1", ["creating"], "running", { at: 1500 });
      const stopped = await store.sandboxes.transition("sbx_1", ["running", "hibernated"], "stopped", {
        at: 2000,
      });
      expect(stopped).toMatchObject({ state: "stopped", stateChangedAt: 2000, destroyedAt: null });
      // A second stop (another replica, a double click) finds it already moved on.
      expect(
        await store.sandboxes.transition("sbx_1", ["running", "hibernated"], "stopped", { at: 2100 }),
      ).toBeUndefined();
      // Stopped holds a disk: it counts against the user's limit and shows in the state counts.
      expect(await store.sandboxes.countLiveForUser("usr_1")).toBe(1);
      expect((await store.sandboxes.countByState()).stopped).toBe(1);
      expect(
        (await store.sandboxes.listForUser("usr_1", { limit: 10, states: ["stopped"] })).items.map(
          (s) => s.id,
        ),
      ).toEqual(["sbx_1"]);
      // Not idle (no processes to be idle), but its hard timeout still applies.
      expect(await store.sandboxes.listIdle(1_000_000)).toEqual([]);
      expect((await store.sandboxes.listExpired(61_000)).map((s) => s.id)).toEqual(["sbx_1"]);
      // The inactivity sweep reads when it stopped, not when it was last used.
      expect(await store.sandboxes.listStoppedSince(1999)).toEqual([]);
      expect((await store.sandboxes.listStoppedSince(2000)).map((s) => s.id)).toEqual(["sbx_1"]);

      const grown = await store.sandboxes.setDiskMb("sbx_1", 4096, 2500);
      expect(grown).toMatchObject({ diskMb: 4096, updatedAt: 2500, state: "stopped" });
      expect(await store.sandboxes.setDiskMb("sbx_missing", 4096, 2500)).toBeUndefined();

      const started = await store.sandboxes.transition("sbx_1", ["stopped"], "running", { at: 3000 });
      expect(started).toMatchObject({ state: "running", stateChangedAt: 3000, diskMb: 4096 });
      expect(await store.sandboxes.listStoppedSince(10_000)).toEqual([]);
    });

    it("keeps sandbox names unique per user among sandboxes that are not destroyed", async () => {
      await store.users.create(user("usr_1"));
      await store.users.create(user("usr_2"));
      await store.sandboxes.insert(sandbox("sbx_a", "usr_1", 1000, { name: "dev" }));
      expect((await store.sandboxes.get("sbx_a"))?.name).toBe("dev");
      // Unnamed sandboxes never collide with each other.
      await store.sandboxes.insert(sandbox("sbx_u1", "usr_1", 1000));
      await store.sandboxes.insert(sandbox("sbx_u2", "usr_1", 1000));
      // Another user may use the same name.
      await store.sandboxes.insert(sandbox("sbx_b", "usr_2", 1000, { name: "dev" }));
      const taken = await store.sandboxes
        .insert(sandbox("sbx_c", "usr_1", 2000, { name: "dev" }))
        .catch((e) => e);
      expect(taken).toBeInstanceOf(PolydevError);
      expect(taken).toMatchObject({ code: "conflict", details: { fields: ["userId", "name"] } });
      expect((await store.sandboxes.getForUserByName("usr_1", "dev"))?.id).toBe("sbx_a");
      expect((await store.sandboxes.getForUserByName("usr_2", "dev"))?.id).toBe("sbx_b");
      expect(await store.sandboxes.getForUserByName("usr_1", "nope")).toBeUndefined();

      // A failed sandbox keeps its name (its logs are still looked up by it) until destroyed.
      await store.sandboxes.transition("sbx_a", ["creating"], "failed", { at: 3000, failureReason: "x" });
      await expect(
        store.sandboxes.insert(sandbox("sbx_c", "usr_1", 3000, { name: "dev" })),
      ).rejects.toMatchObject({
        code: "conflict",
      });
      await store.sandboxes.transition("sbx_a", ["failed"], "destroyed", { at: 4000 });
      expect(await store.sandboxes.getForUserByName("usr_1", "dev")).toBeUndefined();
      await store.sandboxes.insert(sandbox("sbx_c", "usr_1", 5000, { name: "dev" }));
      expect((await store.sandboxes.getForUserByName("usr_1", "dev"))?.id).toBe("sbx_c");
      // The destroyed one keeps its name for the record.
      expect((await store.sandboxes.get("sbx_a"))?.name).toBe("dev");
    });

    it("commits a transaction that resolves and rolls back one that throws", async () => {
      const committed = await store.transaction(async (tx) => {
        await tx.users.create(user("usr_1"));
        await tx.sandboxes.insert(sandbox("sbx_1", "usr_1", 1000));
        return "done";
      });
      expect(committed).toBe("done");
      expect(await store.sandboxes.get("sbx_1")).toBeDefined();

      const failure = new Error("abort the transaction");
      await expect(
        store.transaction(async (tx) => {
          await tx.users.create(user("usr_2"));
          await tx.sandboxes.transition("sbx_1", ["creating"], "running", { at: 2000 });
          throw failure;
        }),
      ).rejects.toBe(failure);
      expect(await store.users.getById("usr_2")).toBeUndefined();
      expect((await store.sandboxes.get("sbx_1"))?.state).toBe("creating");
    });

    it("keeps one credential per user and provider, replaces it, and rotates it by compare-and-set", async () => {
      await store.users.create(user("usr_1"));
      const base = {
        userId: "usr_1",
        provider: "anthropic",
        kind: "api_key" as const,
        metadata: {},
        createdAt: 10,
      };
      await store.credentials.upsert({ ...base, id: "cred_1", sealed: "pv1.k1.a.b", keyId: "k1" });
      const replaced = await store.credentials.upsert({
        ...base,
        id: "cred_2",
        sealed: "pv1.k1.c.d",
        keyId: "k1",
        createdAt: 20,
      });
      expect(replaced).toMatchObject({ id: "cred_1", sealed: "pv1.k1.c.d", updatedAt: 20, valid: null });
      expect(await store.credentials.listForUser("usr_1")).toHaveLength(1);
      await store.credentials.markValidated("cred_1", 30, false);
      expect((await store.credentials.get("usr_1", "anthropic"))?.valid).toBe(false);
      expect(await store.credentials.replaceSealed("cred_1", "stale", "pv1.k2.e.f", "k2")).toBe(false);
      expect(await store.credentials.replaceSealed("cred_1", "pv1.k1.c.d", "pv1.k2.e.f", "k2")).toBe(true);
      expect(await store.credentials.countByKeyId("k1")).toBe(0);
      expect(await store.credentials.countByKeyId("k2")).toBe(1);
      expect(await store.credentials.delete("usr_1", "anthropic")).toBe(true);
      expect(await store.credentials.get("usr_1", "anthropic")).toBeUndefined();
    });

    it("finds gateway tokens by hash and sums usage by provider and model", async () => {
      await store.users.create(user("usr_1"));
      await store.sandboxes.insert(sandbox("sbx_1", "usr_1", 1000));
      await store.gatewayTokens.create({
        tokenHash: "th",
        sandboxId: "sbx_1",
        userId: "usr_1",
        createdAt: 1,
      });
      expect(await store.gatewayTokens.findByHash("th")).toMatchObject({
        sandboxId: "sbx_1",
        userId: "usr_1",
      });
      expect(await store.gatewayTokens.findByHash("nope")).toBeUndefined();
      const entry = { userId: "usr_1", sandboxId: "sbx_1", provider: "openai", model: "m", status: 200 };
      await store.usage.record({ ...entry, inputTokens: 10, outputTokens: 3, at: 100 });
      await store.usage.record({ ...entry, inputTokens: 5, outputTokens: 2, at: 200 });
      expect(await store.usage.summary({ userId: "usr_1" })).toEqual([
        { provider: "openai", model: "m", requests: 2, inputTokens: 15, outputTokens: 5 },
      ]);
      expect(await store.usage.summary({ userId: "usr_1", since: 150 })).toEqual([
        { provider: "openai", model: "m", requests: 1, inputTokens: 5, outputTokens: 2 },
      ]);
    });

    it("pages runs newest first and keeps their events in sequence", async () => {
      await store.users.create(user("usr_1"));
      const run = (id: string, createdAt: number) => ({
        id,
        userId: "usr_1",
        sandboxId: "sbx_x",
        groupId: null,
        agent: "claude",
        prompt: "p",
        model: null,
        cwd: ".",
        state: "queued",
        exitReason: null,
        finalText: null,
        inputTokens: 0,
        outputTokens: 0,
        timeoutMs: 1000,
        maxTurns: null,
        createdAt,
        startedAt: null,
        endedAt: null,
      });
      for (const [id, at] of [
        ["run_1", 1],
        ["run_2", 2],
        ["run_3", 3],
      ] as const)
        await store.runs.insert(run(id, at));
      const first = await store.runs.listForUser("usr_1", { limit: 2 });
      expect(first.items.map((r) => r.id)).toEqual(["run_3", "run_2"]);
      const second = await store.runs.listForUser("usr_1", { limit: 2, cursor: first.nextCursor });
      expect(second.items.map((r) => r.id)).toEqual(["run_1"]);
      expect(second.nextCursor).toBeUndefined();
      expect(await store.runs.transition("run_1", ["running"], "failed", {})).toBeUndefined();
      expect((await store.runs.transition("run_1", ["queued"], "running", { startedAt: 5 }))?.startedAt).toBe(
        5,
      );
      for (const seq of [1, 2, 3])
        await store.runs.appendEvent({ runId: "run_1", seq, at: seq, body: "{}", raw: null });
      expect((await store.runs.events("run_1", 1, 10)).map((e) => e.seq)).toEqual([2, 3]);
      expect(await store.runs.lastEventSeq("run_1")).toBe(3);
      expect(await store.runs.lastEventSeq("run_without_events")).toBe(0);
      expect(await store.runs.countForUserSince("usr_1", 2)).toBe(2);
      expect(await store.runs.countForUserSince("usr_other", 0)).toBe(0);
    });

    it("lists one group's runs, and only the owner's", async () => {
      await store.users.create(user("usr_1"));
      await store.users.create(user("usr_2"));
      const run = (id: string, userId: string, groupId: string | null, createdAt: number) => ({
        id,
        userId,
        sandboxId: "sbx_x",
        groupId,
        agent: "claude",
        prompt: "p",
        model: null,
        cwd: ".",
        state: "queued",
        exitReason: null,
        finalText: null,
        inputTokens: 0,
        outputTokens: 0,
        timeoutMs: 1000,
        maxTurns: null,
        createdAt,
        startedAt: null,
        endedAt: null,
      });
      await store.runs.insert(run("run_a1", "usr_1", "grp_a", 1));
      await store.runs.insert(run("run_a2", "usr_1", "grp_a", 2));
      await store.runs.insert(run("run_b1", "usr_1", "grp_b", 3));
      await store.runs.insert(run("run_solo", "usr_1", null, 4));
      await store.runs.insert(run("run_x", "usr_2", "grp_a", 5));
      const group = await store.runs.listForUser("usr_1", { limit: 10, groupId: "grp_a" });
      expect(group.items.map((r) => r.id)).toEqual(["run_a2", "run_a1"]);
      const paged = await store.runs.listForUser("usr_1", { limit: 1, groupId: "grp_a" });
      expect(paged.items.map((r) => r.id)).toEqual(["run_a2"]);
      const rest = await store.runs.listForUser("usr_1", {
        limit: 1,
        groupId: "grp_a",
        cursor: paged.nextCursor,
      });
      expect(rest.items.map((r) => r.id)).toEqual(["run_a1"]);
      expect((await store.runs.listForUser("usr_1", { limit: 10, groupId: "grp_none" })).items).toEqual([]);
      expect((await store.runs.listForUser("usr_1", { limit: 10 })).items).toHaveLength(4);
    });

    it("keeps what a run changed, replaces it on a second put, and has none for other runs", async () => {
      await store.users.create(user("usr_1"));
      await store.runs.insert({
        id: "run_c",
        userId: "usr_1",
        sandboxId: "sbx_x",
        groupId: null,
        agent: "builtin",
        prompt: "p",
        model: null,
        cwd: "projects/app",
        state: "succeeded",
        exitReason: null,
        finalText: null,
        inputTokens: 0,
        outputTokens: 0,
        timeoutMs: 1000,
        maxTurns: null,
        createdAt: 1,
        startedAt: null,
        endedAt: null,
      });
      const changes = {
        runId: "run_c",
        project: "projects/app",
        baseCommit: "a".repeat(40),
        files: [{ path: "src/ä b.ts", status: "M" }],
        filesTruncated: false,
        diff: "diff --git a/x b/x\n+ü\n",
        diffTruncated: false,
        check: null,
        error: null,
        recordedAt: 5,
      };
      await store.runs.putChanges(changes);
      expect(await store.runs.getChanges("run_c")).toEqual(changes);
      const again = {
        ...changes,
        diffTruncated: true,
        check: { command: "npm test", exitCode: 1, output: "1 failed", outputTruncated: false },
        recordedAt: 6,
      };
      await store.runs.putChanges(again);
      expect(await store.runs.getChanges("run_c")).toEqual(again);
      expect(await store.runs.getChanges("run_other")).toBeUndefined();
    });

    it("keeps a run's keep record, replaces it on a second keep, and lists a group's keeps", async () => {
      await store.users.create(user("usr_1"));
      const run = (id: string, at: number) => ({
        id,
        userId: "usr_1",
        sandboxId: "sbx_1",
        groupId: "grp_1",
        agent: "claude",
        prompt: "p",
        model: null,
        cwd: "projects/app",
        state: "succeeded",
        exitReason: null,
        finalText: null,
        inputTokens: 0,
        outputTokens: 0,
        timeoutMs: 1000,
        maxTurns: null,
        createdAt: at,
        startedAt: null,
        endedAt: null,
      });
      await store.runs.insert(run("run_k1", 1));
      await store.runs.insert(run("run_k2", 2));
      const keep = {
        runId: "run_k1",
        groupId: "grp_1",
        branch: "polydev/run_k1",
        commit: "b".repeat(40),
        merged: true,
        pushed: false,
        pullRequestUrl: null,
        keptAt: 10,
      };
      await store.runs.putKeep(keep);
      expect(await store.runs.getKeep("run_k1")).toEqual(keep);
      const again = { ...keep, pushed: true, pullRequestUrl: "https://forge/pr/1", keptAt: 11 };
      await store.runs.putKeep(again);
      expect(await store.runs.getKeep("run_k1")).toEqual(again);
      await store.runs.putKeep({ ...keep, runId: "run_k2", merged: false, keptAt: 12 });
      expect((await store.runs.keepsOfGroup("grp_1")).map((k) => [k.runId, k.merged])).toEqual([
        ["run_k1", true],
        ["run_k2", false],
      ]);
      expect(await store.runs.keepsOfGroup("grp_other")).toEqual([]);
      expect(await store.runs.getKeep("run_none")).toBeUndefined();
    });

    it("keeps plans with their limits, puts users on them, and refuses to delete a plan in use", async () => {
      await store.users.create(user("usr_1"));
      await store.users.create(user("usr_2"));
      const plan = (name: string, at: number, runningSandboxes: number) => ({
        name,
        description: `the ${name} plan`,
        limits: { runningSandboxes, memoryMb: 4096 },
        createdAt: at,
        updatedAt: at,
      });
      await store.plans.put(plan("team", 1, 5));
      await store.plans.put(plan("free", 2, 1));
      const replaced = await store.plans.put(plan("team", 9, 10));
      expect(replaced).toMatchObject({
        createdAt: 1,
        updatedAt: 9,
        limits: { runningSandboxes: 10, memoryMb: 4096 },
      });
      expect((await store.plans.list()).map((p) => p.name)).toEqual(["free", "team"]);
      expect(await store.plans.get("nope")).toBeUndefined();

      expect(await store.plans.planOf("usr_1")).toBeUndefined();
      await store.plans.assign("usr_1", "free", 3);
      await store.plans.assign("usr_2", "free", 3);
      await store.plans.assign("usr_2", "team", 4);
      expect(await store.plans.planOf("usr_1")).toBe("free");
      expect(await store.plans.planOf("usr_2")).toBe("team");
      expect(await store.plans.countAssigned()).toEqual(
        new Map([
          ["free", 1],
          ["team", 1],
        ]),
      );
      // A name that is also an Object.prototype key counts nobody.
      expect((await store.plans.countAssigned()).get("constructor")).toBeUndefined();
      await expect(store.plans.assign("usr_1", "no-such-plan", 5)).rejects.toThrow();

      await expect(store.plans.delete("free")).rejects.toMatchObject({ code: "conflict" });
      await store.plans.assign("usr_1", null, 6);
      expect(await store.plans.planOf("usr_1")).toBeUndefined();
      expect(await store.plans.delete("free")).toBe(true);
      expect(await store.plans.delete("free")).toBe(false);
    });

    it("keeps one record per job and scope, the latest run replacing the one before", async () => {
      const run = { job: "reconcile", scope: "", node: "a", outcome: "running" as const, error: null };
      await store.jobRuns.put({ ...run, startedAt: 1, endedAt: null });
      await store.jobRuns.put({
        ...run,
        node: "b",
        outcome: "failed",
        error: "boom",
        startedAt: 5,
        endedAt: 6,
      });
      await store.jobRuns.put({
        ...run,
        job: "audit-prune",
        node: "a",
        startedAt: 2,
        endedAt: 3,
        outcome: "succeeded",
      });
      await store.jobRuns.put({
        ...run,
        job: "reconcile",
        scope: "a",
        startedAt: 7,
        endedAt: 8,
        outcome: "succeeded",
      });
      expect(await store.jobRuns.list()).toEqual([
        {
          job: "audit-prune",
          scope: "",
          node: "a",
          outcome: "succeeded",
          error: null,
          startedAt: 2,
          endedAt: 3,
        },
        {
          job: "reconcile",
          scope: "",
          node: "b",
          outcome: "failed",
          error: "boom",
          startedAt: 5,
          endedAt: 6,
        },
        {
          job: "reconcile",
          scope: "a",
          node: "a",
          outcome: "succeeded",
          error: null,
          startedAt: 7,
          endedAt: 8,
        },
      ]);
    });

    it("keeps one record per node, removes it only while expired, and names each sandbox's node", async () => {
      const node = {
        name: "node-a",
        url: "http://10.0.0.5:7420",
        drivers: ["namespace", "gvisor"],
        cpuCount: 8,
        memoryMb: 32_768,
        runningSandboxes: 2,
        reservedMemoryMb: 1024,
        startedAt: 1,
        refreshedAt: 10,
        expiresAt: 25,
      };
      await store.nodes.put(node);
      await store.nodes.put({ ...node, name: "node-b", drivers: ["namespace"] });
      await store.nodes.put({ ...node, runningSandboxes: 3, refreshedAt: 20, expiresAt: 35 });
      expect(await store.nodes.get("node-a")).toEqual({
        ...node,
        runningSandboxes: 3,
        refreshedAt: 20,
        expiresAt: 35,
      });
      expect((await store.nodes.list()).map((n) => n.name)).toEqual(["node-a", "node-b"]);
      // Refreshed past 30: not removed at 30; node-b (expired at 25) is.
      expect(await store.nodes.removeIfExpired("node-a", 30)).toBe(false);
      expect(await store.nodes.removeIfExpired("node-b", 30)).toBe(true);
      expect(await store.nodes.removeIfExpired("node-b", 30)).toBe(false);
      expect(await store.nodes.get("node-b")).toBeUndefined();

      await store.users.create(user("usr_1"));
      await store.sandboxes.insert({ ...sandbox("sbx_1", "usr_1", 1000), node: "node-a" });
      await store.sandboxes.insert(sandbox("sbx_2", "usr_1", 1000));
      expect((await store.sandboxes.get("sbx_1"))?.node).toBe("node-a");
      expect((await store.sandboxes.get("sbx_2"))?.node).toBeNull();
    });

    it("keeps one row per login, lists a user's newest first and a node's unfinished ones", async () => {
      await store.users.create(user("usr_1"));
      await store.users.create(user("usr_2"));
      const login = {
        id: "login_a",
        userId: "usr_1",
        provider: "claude",
        sandboxId: "sbx_1",
        node: "node-a",
        ownsSandbox: true,
        state: "starting",
        reason: null,
        createdAt: 10,
        updatedAt: 10,
      };
      await store.logins.put(login);
      await store.logins.put({
        ...login,
        id: "login_b",
        provider: "codex",
        ownsSandbox: false,
        createdAt: 20,
      });
      await store.logins.put({ ...login, id: "login_c", userId: "usr_2", node: "node-b", createdAt: 30 });
      await store.logins.put({ ...login, state: "failed", reason: "the CLI exited with 1", updatedAt: 40 });
      expect(await store.logins.get("login_a")).toEqual({
        ...login,
        state: "failed",
        reason: "the CLI exited with 1",
        updatedAt: 40,
      });
      expect((await store.logins.get("login_b"))?.ownsSandbox).toBe(false);
      expect(await store.logins.get("login_missing")).toBeUndefined();
      expect((await store.logins.listForUser("usr_1", 10)).map((l) => l.id)).toEqual(["login_b", "login_a"]);
      expect((await store.logins.listForUser("usr_1", 1)).map((l) => l.id)).toEqual(["login_b"]);
      const unfinished = ["starting", "awaiting_user", "completing"];
      expect((await store.logins.listForNode("node-a", unfinished)).map((l) => l.id)).toEqual(["login_b"]);
      expect(await store.logins.listForNode("node-a", [])).toEqual([]);
      expect(await store.logins.deleteUpdatedBefore(15)).toBe(2);
      expect((await store.logins.listForUser("usr_1", 10)).map((l) => l.id)).toEqual(["login_a"]);
    });

    it("keeps logs in insertion order per sandbox and pages them after an id", async () => {
      await store.users.create(user("usr_1"));
      await store.sandboxes.insert(sandbox("sbx_1", "usr_1", 1000));
      await store.sandboxes.insert(sandbox("sbx_2", "usr_1", 1000));
      // `at` deliberately out of order: the log id, not the timestamp, is the order of arrival.
      await store.sandboxLogs.append("sbx_1", [
        { at: 3, level: "info", source: "server", message: "one" },
        { at: 1, level: "error", source: "console", message: "two" },
      ]);
      await store.sandboxLogs.append("sbx_2", [{ at: 2, level: "info", source: "driver", message: "other" }]);
      await store.sandboxLogs.append("sbx_1", [{ at: 2, level: "warn", source: "driver", message: "three" }]);
      await store.sandboxLogs.append("sbx_1", []);
      const all = await store.sandboxLogs.list("sbx_1", { limit: 10 });
      expect(all.map((l) => l.message)).toEqual(["one", "two", "three"]);
      expect(all[1]).toMatchObject({ sandboxId: "sbx_1", at: 1, level: "error", source: "console" });
      expect(all.every((l) => typeof l.id === "number")).toBe(true);
      const after = await store.sandboxLogs.list("sbx_1", { afterId: all[0]?.id, limit: 1 });
      expect(after.map((l) => l.message)).toEqual(["two"]);
      expect(await store.sandboxLogs.list("sbx_1", { afterId: all[2]?.id, limit: 10 })).toEqual([]);
    });

    it("keeps an allow-list sandbox's rules, a user's default network, presets and a bounded audit log", async () => {
      await store.users.create(user("usr_1"));
      const policy = {
        allow: ["registry.example.com", "10.20.0.0/16"],
        deny: ["*.bad.example"],
        presets: ["github"],
      };
      await store.sandboxes.insert(
        sandbox("sbx_1", "usr_1", 1000, { network: "allowlist", egressPolicy: policy }),
      );
      await store.sandboxes.insert(sandbox("sbx_2", "usr_1", 1000));
      expect((await store.sandboxes.get("sbx_1"))?.egressPolicy).toEqual(policy);
      expect((await store.sandboxes.get("sbx_2"))?.egressPolicy).toBeNull();
      const narrowed = { allow: ["registry.example.com"], deny: [], presets: [] };
      expect((await store.sandboxes.setEgressPolicy("sbx_1", narrowed, 2000))?.egressPolicy).toEqual(
        narrowed,
      );
      expect(await store.sandboxes.setEgressPolicy("sbx_none", narrowed, 2000)).toBeUndefined();

      expect(await store.users.getNetworkDefault("usr_1")).toBeNull();
      const choice = { mode: "allowlist" as const, allow: ["a.example"], deny: [], presets: [] };
      await store.users.setNetworkDefault("usr_1", choice);
      expect(await store.users.getNetworkDefault("usr_1")).toEqual(choice);
      await store.users.setNetworkDefault("usr_1", null);
      expect(await store.users.getNetworkDefault("usr_1")).toBeNull();

      const preset = {
        name: "github",
        description: "GitHub",
        allow: ["github.com"],
        deny: [],
        createdAt: 5,
        updatedAt: 5,
      };
      await store.egressPresets.put(preset);
      await store.egressPresets.put({
        ...preset,
        allow: ["github.com", "*.github.com"],
        createdAt: 9,
        updatedAt: 9,
      });
      expect(await store.egressPresets.get("github")).toEqual({
        ...preset,
        createdAt: expect.any(Number),
        allow: ["github.com", "*.github.com"],
        updatedAt: 9,
      });
      expect(await store.egressPresets.delete("github")).toBe(true);
      expect((await store.egressPresets.list()).map((p) => p.name)).toEqual(["package-registries"]);
      expect(await store.egressPresets.delete("github")).toBe(false);

      const event = (port: number) => ({
        at: port,
        kind: "tcp" as const,
        host: port % 2 ? "a.example" : null,
        address: "198.18.0.2",
        port,
        decision: "denied" as const,
        reason: "not_listed",
        bytesOut: 3_000_000_000,
        bytesIn: 0,
        durationMs: 1,
      });
      await store.egressAudit.append("sbx_1", [1, 2, 3, 4, 5].map(event));
      await store.egressAudit.append("sbx_2", [event(9)]);
      const newest = await store.egressAudit.list("sbx_1", { limit: 2 });
      expect(newest.map((e) => e.port)).toEqual([5, 4]);
      expect(newest[0]).toMatchObject({ sandboxId: "sbx_1", host: "a.example", bytesOut: 3_000_000_000 });
      expect(
        (await store.egressAudit.list("sbx_1", { limit: 10, beforeId: newest[1]?.id })).map((e) => e.port),
      ).toEqual([3, 2, 1]);
      expect(await store.egressAudit.prune("sbx_1", 2)).toBe(3);
      expect((await store.egressAudit.list("sbx_1", { limit: 10 })).map((e) => e.port)).toEqual([5, 4]);
      expect((await store.egressAudit.list("sbx_2", { limit: 10 })).map((e) => e.port)).toEqual([9]);
    });

    it("finds sessions by token hash joined with their user, expires and deletes them", async () => {
      await store.users.create(user("usr_1"));
      await store.users.create(user("usr_2"));
      const session = (id: string, userId: string, extra: Partial<SessionRecord> = {}): SessionRecord => ({
        id,
        userId,
        tokenHash: `hash-${id}`,
        createdAt: 100,
        lastSeenAt: 100,
        expiresAt: 10_000,
        ...extra,
      });
      await store.sessions.create(session("ses_1", "usr_1"));
      expect(await store.sessions.findByTokenHash("hash-ses_1")).toEqual({
        session: session("ses_1", "usr_1"),
        user: user("usr_1"),
      });
      expect(await store.sessions.findByTokenHash("nope")).toBeUndefined();
      await expect(
        store.sessions.create({ ...session("ses_9", "usr_1"), tokenHash: "hash-ses_1" }),
      ).rejects.toMatchObject({ code: "conflict", details: { fields: ["tokenHash"] } });
      await store.sessions.touch("ses_1", 500);
      expect((await store.sessions.findByTokenHash("hash-ses_1"))?.session.lastSeenAt).toBe(500);

      // Absolute end passed, idle too long, still fine.
      await store.sessions.create(session("ses_old", "usr_1", { expiresAt: 900 }));
      await store.sessions.create(session("ses_idle", "usr_1", { lastSeenAt: 200 }));
      expect(await store.sessions.deleteExpired(1000, 300)).toBe(2);
      expect(await store.sessions.findByTokenHash("hash-ses_old")).toBeUndefined();
      expect(await store.sessions.findByTokenHash("hash-ses_idle")).toBeUndefined();
      expect(await store.sessions.findByTokenHash("hash-ses_1")).toBeDefined();

      await store.sessions.create(session("ses_2", "usr_1"));
      await store.sessions.create(session("ses_3", "usr_2"));
      expect(await store.sessions.deleteForUser("usr_1", "ses_2")).toBe(1);
      expect(await store.sessions.findByTokenHash("hash-ses_2")).toBeDefined();
      expect(await store.sessions.findByTokenHash("hash-ses_3")).toBeDefined();
      expect(await store.sessions.delete("ses_2")).toBe(true);
      expect(await store.sessions.delete("ses_2")).toBe(false);
      expect(await store.sessions.deleteForUser("usr_2")).toBe(1);
    });

    it("sets and clears a user's password hash", async () => {
      await store.users.create(user("usr_1"));
      await store.users.setPasswordHash("usr_1", "scrypt$x");
      expect((await store.users.getByName("name-usr_1"))?.passwordHash).toBe("scrypt$x");
      await store.users.setPasswordHash("usr_1", null);
      expect((await store.users.getById("usr_1"))?.passwordHash).toBeNull();
    });

    it("keeps images per owner with system images visible to all, their layers, and who uses them", async () => {
      await store.users.create(user("usr_1"));
      await store.users.create(user("usr_2"));
      const image = (id: string, ownerId: string | null, name: string) => ({
        id,
        ownerId,
        name,
        digest: null,
        state: "building" as const,
        layers: [] as string[],
        config: { env: {} },
        sizeBytes: 0,
        source: "dockerfile" as const,
        buildLog: "",
        error: null,
        createdAt: 1000,
      });
      await store.images.insert(image("img_base", null, "polydev/base"));
      await store.images.insert(image("img_1", "usr_1", "alice/node:1"));
      await store.images.insert(image("img_2", "usr_2", "alice/node:1"));
      await expect(store.images.insert(image("img_3", "usr_1", "alice/node:1"))).rejects.toMatchObject({
        code: "conflict",
      });
      await expect(store.images.insert(image("img_4", null, "polydev/base"))).rejects.toMatchObject({
        code: "conflict",
      });
      expect((await store.images.listVisible("usr_1")).map((i) => i.id)).toEqual(["img_1", "img_base"]);
      expect((await store.images.getByName(null, "polydev/base"))?.id).toBe("img_base");
      expect((await store.images.getByName("usr_2", "alice/node:1"))?.id).toBe("img_2");
      expect(await store.images.getByName("usr_2", "polydev/base")).toBeUndefined();

      const ready = await store.images.update("img_1", {
        state: "ready",
        digest: "sha256:abc",
        layers: ["aa", "bb"],
        config: { env: { PATH: "/bin" }, workdir: "/app", user: "node", cmd: ["node"] },
        sizeBytes: 12345,
        buildLog: "step 1\n",
        updatedAt: 2000,
      });
      expect(ready).toMatchObject({
        state: "ready",
        digest: "sha256:abc",
        layers: ["aa", "bb"],
        config: { env: { PATH: "/bin" }, workdir: "/app", user: "node", cmd: ["node"] },
        sizeBytes: 12345,
        buildLog: "step 1\n",
        error: null,
        createdAt: 1000,
        updatedAt: 2000,
      });
      expect(await store.images.update("img_none", { state: "failed", updatedAt: 1 })).toBeUndefined();

      await store.sandboxes.insert(sandbox("sbx_1", "usr_1", 1000, { image: "sha256:abc" }));
      await store.sandboxes.insert(sandbox("sbx_2", "usr_1", 1000));
      expect((await store.sandboxes.get("sbx_1"))?.image).toBe("sha256:abc");
      expect((await store.sandboxes.get("sbx_2"))?.image).toBeNull();
      expect(await store.images.countSandboxesUsing("sha256:abc")).toBe(1);
      await store.sandboxes.transition("sbx_1", ["creating"], "destroyed", { at: 3000 });
      expect(await store.images.countSandboxesUsing("sha256:abc")).toBe(0);

      const layer = { id: "aa", dir: "/pool/layers/aa", sizeBytes: 10, createdAt: 1000 };
      expect(await store.images.putLayer(layer)).toEqual(layer);
      expect(await store.images.putLayer({ ...layer, sizeBytes: 99, createdAt: 5 })).toEqual(layer);
      await store.images.putLayer({ id: "bb", dir: "/pool/layers/bb", sizeBytes: 1, createdAt: 1 });
      expect((await store.images.listLayers()).map((l) => l.id)).toEqual(["aa", "bb"]);
      expect(await store.images.deleteLayer("aa")).toBe(true);
      expect(await store.images.deleteLayer("aa")).toBe(false);
      expect(await store.images.getLayer("aa")).toBeUndefined();

      expect(await store.images.delete("img_1")).toBe(true);
      expect(await store.images.delete("img_1")).toBe(false);
      expect((await store.images.listAll()).map((i) => i.id)).toEqual(["img_2", "img_base"].sort());
    });

    it("counts runs per hour and sums usage per provider across users", async () => {
      const HOUR = 3_600_000;
      await store.users.create(user("usr_1"));
      await store.users.create(user("usr_2"));
      const base = 1000 * HOUR;
      const run = (id: string, userId: string, createdAt: number) => ({
        id,
        userId,
        sandboxId: "sbx_x",
        groupId: null,
        agent: "claude",
        prompt: "p",
        model: null,
        cwd: ".",
        state: "queued",
        exitReason: null,
        finalText: null,
        inputTokens: 0,
        outputTokens: 0,
        timeoutMs: 1000,
        maxTurns: null,
        createdAt,
        startedAt: null,
        endedAt: null,
      });
      await store.runs.insert(run("run_0", "usr_1", base - 1));
      await store.runs.insert(run("run_1", "usr_1", base));
      await store.runs.insert(run("run_2", "usr_2", base + HOUR - 1));
      await store.runs.insert(run("run_3", "usr_1", base + 3 * HOUR + 5));
      expect(await store.runs.countPerHour(base)).toEqual([
        { hourStart: base, count: 2 },
        { hourStart: base + 3 * HOUR, count: 1 },
      ]);
      await store.sandboxes.insert(sandbox("sbx_1", "usr_1", 1000));
      await store.sandboxes.insert(sandbox("sbx_2", "usr_2", 1000));
      const entry = { model: "m", status: 200, outputTokens: 1 };
      await store.usage.record({
        ...entry,
        userId: "usr_1",
        sandboxId: "sbx_1",
        provider: "openai",
        inputTokens: 10,
        at: 5,
      });
      await store.usage.record({
        ...entry,
        userId: "usr_2",
        sandboxId: "sbx_2",
        provider: "openai",
        inputTokens: 7,
        model: "n",
        at: 50,
      });
      await store.usage.record({
        ...entry,
        userId: "usr_2",
        sandboxId: "sbx_2",
        provider: "anthropic",
        inputTokens: 2,
        at: 60,
      });
      expect(await store.usage.totalsByProvider({})).toEqual([
        { provider: "anthropic", requests: 1, inputTokens: 2, outputTokens: 1 },
        { provider: "openai", requests: 2, inputTokens: 17, outputTokens: 2 },
      ]);
      expect(await store.usage.totalsByProvider({ since: 40 })).toEqual([
        { provider: "anthropic", requests: 1, inputTokens: 2, outputTokens: 1 },
        { provider: "openai", requests: 1, inputTokens: 7, outputTokens: 1 },
      ]);
    });

    it("folds usage older than the window into hourly sums and answers the same totals", async () => {
      const HOUR = 3_600_000;
      const base = 2000 * HOUR;
      await store.users.create(user("usr_1"));
      await store.sandboxes.insert(sandbox("sbx_1", "usr_1", 1000));
      const entry = { userId: "usr_1", sandboxId: "sbx_1", status: 200, outputTokens: 1 };
      const record = (provider: string, model: string, inputTokens: number, at: number) =>
        store.usage.record({ ...entry, provider, model, inputTokens, at });
      // Beyond 32 bits: the sums are int8 on both dialects.
      await record("openai", "m", 3_000_000_000, base + 5);
      await record("openai", "m", 3_000_000_000, base + 10);
      await record("openai", "m", 4, base + HOUR + 1);
      await record("anthropic", "c", 2, base + 2 * HOUR + 3);
      const answers = async () => ({
        all: await store.usage.summary({ userId: "usr_1" }),
        sinceHour: await store.usage.summary({ userId: "usr_1", since: base + HOUR }),
        providers: await store.usage.totalsByProvider({}),
      });
      const before = await answers();
      expect(before.all).toEqual([
        { provider: "anthropic", model: "c", requests: 1, inputTokens: 2, outputTokens: 1 },
        { provider: "openai", model: "m", requests: 3, inputTokens: 6_000_000_004, outputTokens: 3 },
      ]);
      // Rounded down to the hour: the third hour's row is not folded.
      expect(await store.usage.rollUp(base + 2 * HOUR + 7)).toBe(3);
      expect(await answers()).toEqual(before);
      expect(await store.usage.rollUp(base + 2 * HOUR + 7)).toBe(0);
      // A late row for a folded hour is added to that hour's sums.
      await record("openai", "m", 1, base + 20);
      expect(await store.usage.rollUp(base + 2 * HOUR)).toBe(1);
      expect(await store.usage.summary({ userId: "usr_1", since: base })).toEqual([
        { provider: "anthropic", model: "c", requests: 1, inputTokens: 2, outputTokens: 1 },
        { provider: "openai", model: "m", requests: 4, inputTokens: 6_000_000_005, outputTokens: 4 },
      ]);
      expect(await store.usage.totalsByProvider({ since: base + HOUR })).toEqual([
        { provider: "anthropic", requests: 1, inputTokens: 2, outputTokens: 1 },
        { provider: "openai", requests: 1, inputTokens: 4, outputTokens: 1 },
      ]);
    });

    it("keeps a run's conversation for its next turn and lists a group's runs for their owner only", async () => {
      await store.users.create(user("usr_1"));
      await store.users.create(user("usr_2"));
      const run = (id: string, userId: string, groupId: string | null, createdAt: number) => ({
        id,
        userId,
        sandboxId: "sbx_x",
        groupId,
        agent: "claude",
        prompt: "p",
        model: null,
        cwd: ".",
        state: "succeeded",
        exitReason: null,
        finalText: null,
        inputTokens: 0,
        outputTokens: 0,
        timeoutMs: 1000,
        maxTurns: null,
        createdAt,
        startedAt: null,
        endedAt: null,
      });
      await store.runs.insert(run("run_g2", "usr_1", "grp_a", 2));
      await store.runs.insert(run("run_g1", "usr_1", "grp_a", 1));
      await store.runs.insert(run("run_other_group", "usr_1", "grp_b", 1));
      await store.runs.insert(run("run_foreign", "usr_2", "grp_a", 1));
      expect((await store.runs.listForGroup("usr_1", "grp_a")).map((r) => r.id)).toEqual([
        "run_g1",
        "run_g2",
      ]);
      expect(await store.runs.listForGroup("usr_2", "grp_b")).toEqual([]);

      expect(await store.runs.getConversation("run_g1")).toBeUndefined();
      const first = {
        runId: "run_g1",
        turns: 1,
        sessionId: "5f0c-ü",
        history: null,
        eventBytes: 1234,
        mcpServers: [] as string[],
        updatedAt: 10,
      };
      await store.runs.putConversation(first);
      expect(await store.runs.getConversation("run_g1")).toEqual(first);
      const second = {
        ...first,
        turns: 2,
        sessionId: null,
        history: '[{"role":"user"}]',
        eventBytes: 2 ** 33,
        mcpServers: ["files", "search"],
        updatedAt: 11,
      };
      await store.runs.putConversation(second);
      expect(await store.runs.getConversation("run_g1")).toEqual(second);
      expect(await store.runs.getConversation("run_g2")).toBeUndefined();
    });

    runStoreParityCases(() => store);
    runWebhookStoreCases(() => store);
  });
}
