import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import SqliteDatabase from "better-sqlite3";
import { afterAll, describe, expect, it } from "vitest";
import { openSqliteStore } from "./sqlite.js";
import { runStoreContract } from "./testing/store-contract.js";

const dirs: string[] = [];
async function freshFile(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "polydev-store-"));
  dirs.push(dir);
  return join(dir, "polydev.db");
}
afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

runStoreContract("sqlite file", async () => openSqliteStore({ file: await freshFile() }));

describe("sqlite specifics", () => {
  it("uses WAL, enforces foreign keys, and keeps data across close and reopen (migrations idempotent)", async () => {
    const file = await freshFile();
    const first = await openSqliteStore({ file });
    await first.users.create({ id: "usr_1", name: "keep", role: "admin", passwordHash: null, createdAt: 1 });
    await expect(
      first.apiKeys.create({
        id: "key_x",
        userId: "usr_missing",
        name: "k",
        keyHash: "h",
        prefix: "p",
        createdAt: 1,
      }),
    ).rejects.toThrow();
    await first.close();

    const second = await openSqliteStore({ file });
    expect((await second.users.getByName("keep"))?.role).toBe("admin");
    await second.close();

    const raw = new SqliteDatabase(file, { readonly: true });
    expect(raw.pragma("journal_mode", { simple: true })).toBe("wal");
    const migrations = raw.prepare("select name from kysely_migration").all();
    raw.close();
    expect(migrations).toEqual([
      { name: "001-initial" },
      { name: "002-credentials" },
      { name: "003-runs" },
      { name: "004-user-proxy" },
    ]);
  });
});
