/**
 * Cases where SQLite and Postgres could plausibly disagree (collation, case, integer widths,
 * concurrency, JSON text, booleans); part of the Store contract, so every dialect runs them.
 */
import type { NewSandbox, RunRecord, Store } from "@polydev/core";
import { PolydevError } from "@polydev/core";
import { expect, it } from "vitest";

const user = (id: string, name = `name-${id}`) => ({
  id,
  name,
  role: "user" as const,
  passwordHash: null,
  createdAt: 1000,
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
  cpu: 0.1,
  memoryMb: 512,
  diskMb: 1024,
  pidsMax: 256,
  network: "none",
  egressPolicy: null,
  env: {},
  metadata: {},
  timeoutMs: 60_000,
  idleTimeoutMs: 10_000,
  createdAt,
  expiresAt: createdAt + 60_000,
  ...extra,
});

const run = (id: string, extra: Partial<RunRecord> = {}): RunRecord => ({
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
  createdAt: 1,
  startedAt: null,
  endedAt: null,
  ...extra,
});

export function runStoreParityCases(store: () => Store): void {
  it("orders ids by their bytes (as SQLite does), whatever the database's collation", async () => {
    const s = store();
    await s.users.create(user("usr_1"));
    // Real ids are base64url: upper and lower case, digits, "-" and "_". A locale collation
    // (Postgres' default) would put "a" before "B" and may weigh punctuation differently.
    const ids = ["sbx_a", "sbx_B", "sbx_-", "sbx__", "sbx_Z", "sbx_0", "sbx_aB", "sbx_Ab"];
    for (const id of ids) await s.sandboxes.insert(sandbox(id, "usr_1", 1000));
    const byteOrderDesc = [...ids].sort((a, b) => (a < b ? 1 : a > b ? -1 : 0));
    const paged: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await s.sandboxes.listForUser("usr_1", { limit: 3, cursor });
      paged.push(...page.items.map((x) => x.id));
      cursor = page.nextCursor;
    } while (cursor);
    expect(paged).toEqual(byteOrderDesc);
    expect((await s.sandboxes.listAll()).map((x) => x.id)).toEqual([...byteOrderDesc].reverse());
  });

  it("compares names case-sensitively: differently cased names are different users and sandboxes", async () => {
    const s = store();
    await s.users.create(user("usr_1", "Alice"));
    await s.users.create(user("usr_2", "alice"));
    expect((await s.users.getByName("Alice"))?.id).toBe("usr_1");
    expect((await s.users.getByName("alice"))?.id).toBe("usr_2");
    expect(await s.users.getByName("ALICE")).toBeUndefined();
    await s.sandboxes.insert(sandbox("sbx_1", "usr_1", 1, { name: "Box" }));
    await s.sandboxes.insert(sandbox("sbx_2", "usr_1", 2, { name: "box" }));
    expect((await s.sandboxes.getForUserByName("usr_1", "box"))?.id).toBe("sbx_2");
    expect(await s.sandboxes.getForUserByName("usr_1", "BOX")).toBeUndefined();
  });

  it("keeps integers up to 2^53 - 1 exact, in time, size and token columns", async () => {
    const s = store();
    const big = Number.MAX_SAFE_INTEGER;
    await s.users.create(user("usr_1"));
    const inserted = await s.sandboxes.insert(sandbox("sbx_1", "usr_1", big - 1, { timeoutMs: big }));
    expect(inserted).toMatchObject({ createdAt: big - 1, timeoutMs: big });
    expect(await s.sandboxes.get("sbx_1")).toMatchObject({ createdAt: big - 1, timeoutMs: big });
    // Beyond a 32-bit integer: a long-lived run's token counts can pass 2^31.
    await s.runs.insert(run("run_1", { inputTokens: 2 ** 31 + 5, outputTokens: 2 ** 40 }));
    expect(await s.runs.get("run_1")).toMatchObject({ inputTokens: 2 ** 31 + 5, outputTokens: 2 ** 40 });
    await s.usage.record({
      userId: "usr_1",
      sandboxId: "sbx_1",
      provider: "anthropic",
      model: "m",
      inputTokens: 2 ** 31,
      outputTokens: 1,
      status: 200,
      at: big,
    });
    await s.usage.record({
      userId: "usr_1",
      sandboxId: "sbx_1",
      provider: "anthropic",
      model: "m",
      inputTokens: 2 ** 31,
      outputTokens: 1,
      status: 200,
      at: big,
    });
    expect(await s.usage.totalsByProvider({})).toEqual([
      { provider: "anthropic", requests: 2, inputTokens: 2 ** 32, outputTokens: 2 },
    ]);
  });

  it("keeps fractional CPUs, unicode JSON and booleans as they were written", async () => {
    const s = store();
    await s.users.create(user("usr_1"));
    const env = { GREETING: "grüß 😀 \u0000-free", EMPTY: "", QUOTE: `"'\\` };
    const metadata = { nested: '{"not":"parsed"}', long: "x".repeat(10_000) };
    await s.sandboxes.insert(sandbox("sbx_1", "usr_1", 1, { cpu: 0.1, env, metadata }));
    expect(await s.sandboxes.get("sbx_1")).toMatchObject({ cpu: 0.1, env, metadata });
    const credential = await s.credentials.upsert({
      id: "cred_1",
      userId: "usr_1",
      provider: "anthropic",
      kind: "api_key",
      sealed: "sealed",
      keyId: "k1",
      metadata: {},
      createdAt: 1,
    });
    expect(credential.valid).toBeNull();
    await s.credentials.markValidated("cred_1", 2, true);
    expect((await s.credentials.get("usr_1", "anthropic"))?.valid).toBe(true);
    await s.credentials.markValidated("cred_1", 3, false);
    expect((await s.credentials.get("usr_1", "anthropic"))?.valid).toBe(false);
  });

  it("lets exactly one of several concurrent inserts of the same unique key win; the rest get the same conflict", async () => {
    const s = store();
    const sameName = await Promise.allSettled(
      [1, 2, 3, 4].map((i) => s.users.create(user(`usr_${i}`, "taken"))),
    );
    expect(sameName.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    const losers = sameName.flatMap((r) => (r.status === "rejected" ? [r.reason] : []));
    expect(losers).toHaveLength(3);
    for (const error of losers) {
      expect(error).toBeInstanceOf(PolydevError);
      expect(error).toMatchObject({
        code: "conflict",
        message: "a user with this name already exists",
        details: { fields: ["name"] },
      });
    }
    const sameId = await Promise.allSettled([1, 2, 3].map((i) => s.users.create(user("usr_same", `n${i}`))));
    expect(sameId.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    for (const r of sameId) {
      if (r.status === "rejected") {
        expect(r.reason).toMatchObject({ code: "conflict", details: { fields: ["id"] } });
      }
    }
    expect(await s.users.count()).toBe(2);
  });
}
