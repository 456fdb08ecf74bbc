/**
 * The SDK's egress-policy calls against a real server (real SQLite, real bubblewrap sandboxes with
 * the allow-list network): create, read and change a policy, presets, per-user defaults, and the
 * audit log filled by real connection attempts from inside a sandbox. Only names under `.invalid`
 * are asked for, and they are refused, so nothing leaves the machine.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TestServer } from "../../server/src/testing/harness.js";
import { startTestServer } from "../../server/src/testing/harness.js";
import { Polydev } from "./client.js";
import { ConflictError, InvalidRequestError } from "./errors.js";

let t: TestServer;
let admin: Polydev;
let user: Polydev;
let userId: string;
const created: string[] = [];

beforeAll(async () => {
  t = await startTestServer();
  admin = new Polydev({ baseUrl: t.url, apiKey: t.adminKey });
  const { user: account, apiKey } = await admin.admin.users.create({ name: "sdk-network-user" });
  userId = account.id;
  user = new Polydev({ baseUrl: t.url, apiKey });
});
afterAll(async () => {
  for (const id of created) await user.sandboxes.destroy(id).catch(() => undefined);
  await t?.close();
});

/** Asks the sandbox's resolver for a name that is not listed, as any program in it would. */
async function lookUp(sandboxId: string, name: string): Promise<void> {
  await user.sandboxes.exec(sandboxId, { cmd: `getent hosts ${name} || true`, timeoutMs: 20_000 });
}

describe("the SDK's egress policy calls", () => {
  it("creates an allow-list sandbox, reads its policy with the presets folded in, and changes it", async () => {
    const { presets } = await user.networkPresets.list();
    const github = presets.find((p) => p.name === "github");
    expect(presets.map((p) => p.name)).toEqual(expect.arrayContaining(["package-registries", "github"]));
    expect(github?.allow).toContain("github.com");

    const box = await user.sandboxes.create({
      memoryMb: 256,
      network: { mode: "allowlist", allow: ["registry.example.com"], presets: ["github"] },
    });
    created.push(box.id);
    expect(box.network).toBe("allowlist");
    expect(box.egressPolicy).toEqual({ allow: ["registry.example.com"], deny: [], presets: ["github"] });

    const policy = await user.sandboxes.network.get(box.id);
    expect(policy).toMatchObject({ mode: "allowlist", allow: ["registry.example.com"], presets: ["github"] });
    expect(policy.effective.allow).toEqual(expect.arrayContaining(["registry.example.com", "github.com"]));

    const changed = await user.sandboxes.network.update(box.id, { deny: ["*.evil.example.com"] });
    expect(changed).toMatchObject({ allow: ["registry.example.com"], deny: ["*.evil.example.com"] });
    expect((await user.sandboxes.get(box.id)).egressPolicy?.deny).toEqual(["*.evil.example.com"]);

    await expect(
      user.sandboxes.network.update(box.id, { presets: ["no-such-preset"] }),
    ).rejects.toBeInstanceOf(InvalidRequestError);
    const plain = await user.sandboxes.create({ memoryMb: 256, network: "none" });
    created.push(plain.id);
    expect(plain.egressPolicy).toBeNull();
    await expect(user.sandboxes.network.update(plain.id, { allow: ["example.com"] })).rejects.toBeInstanceOf(
      ConflictError,
    );
  });

  it("lets an admin define presets and a user's default network", async () => {
    const preset = await admin.admin.putNetworkPreset("internal-git", {
      description: "our Git host",
      allow: ["git.internal.example.com"],
    });
    expect(preset).toMatchObject({ name: "internal-git", allow: ["git.internal.example.com"], deny: [] });
    await expect(user.admin.putNetworkPreset("mine", { allow: ["x.example.com"] })).rejects.toMatchObject({
      code: "forbidden",
    });

    await admin.admin.setUserNetworkDefault(userId, {
      mode: "allowlist",
      allow: ["defaults.example.com"],
      presets: ["internal-git"],
    });
    expect((await admin.admin.getUserNetworkDefault(userId)).network).toMatchObject({ mode: "allowlist" });
    const box = await user.sandboxes.create({ memoryMb: 256 });
    created.push(box.id);
    expect(box.network).toBe("allowlist");
    expect(box.egressPolicy).toMatchObject({ allow: ["defaults.example.com"], presets: ["internal-git"] });

    await expect(admin.admin.deleteNetworkPreset("internal-git")).rejects.toBeInstanceOf(ConflictError);
    await user.sandboxes.destroy(box.id);
    await admin.admin.setUserNetworkDefault(userId, null);
    expect((await admin.admin.getUserNetworkDefault(userId)).network).toBeNull();
    await admin.admin.deleteNetworkPreset("internal-git");
    expect((await user.networkPresets.list()).presets.map((p) => p.name)).not.toContain("internal-git");
  });

  it("reads denied lookups from the audit log, in pages and live", async () => {
    const box = await user.sandboxes.create({
      memoryMb: 256,
      network: { mode: "allowlist", allow: ["registry.example.com"] },
    });
    created.push(box.id);

    await lookUp(box.id, "first-refused.invalid");
    // Audit rows are written in batches, a moment after the decision: read until it is there.
    let first: Awaited<ReturnType<typeof user.sandboxes.network.audit>>["events"][number] | undefined;
    for (let attempt = 0; attempt < 50 && !first; attempt++) {
      const { events } = await user.sandboxes.network.audit(box.id);
      first = events.find((e) => e.host === "first-refused.invalid");
      if (!first) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(first).toMatchObject({ kind: "dns", decision: "denied" });
    expect(first?.reason).toMatch(/^[a-z_]+$/);

    // Once the stream says it is ready, a new lookup arrives on it.
    let ready: () => void = () => undefined;
    const isReady = new Promise<void>((resolve) => {
      ready = resolve;
    });
    const controller = new AbortController();
    const live = (async () => {
      const options = { onReady: ready, signal: controller.signal };
      for await (const event of user.sandboxes.network.auditStream(box.id, options))
        if (event.host === "live-refused.invalid") return event;
      throw new Error("the audit stream ended");
    })();
    await Promise.race([isReady, live]);
    await lookUp(box.id, "live-refused.invalid");
    expect(await live).toMatchObject({ kind: "dns", decision: "denied" });
    controller.abort();

    // Pages go back in time with `before`.
    const newest = await user.sandboxes.network.audit(box.id, { limit: 1 });
    expect(newest.events).toHaveLength(1);
    const older = await user.sandboxes.network.audit(box.id, {
      limit: 100,
      before: newest.events[0]?.id ?? 0,
    });
    expect(older.events.every((e) => e.id < (newest.events[0]?.id ?? 0))).toBe(true);
    expect(older.events.map((e) => e.host)).toContain("first-refused.invalid");
  }, 120_000);
});
