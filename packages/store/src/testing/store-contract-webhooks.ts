/** Webhooks, their delivery queue and MCP servers (migration 016); part of the Store contract. */
import type { Store, WebhookDeliveryRecord } from "@polydev/core";
import { expect, it } from "vitest";

const user = (id: string) => ({
  id,
  name: `name-${id}`,
  role: "user" as const,
  passwordHash: null,
  createdAt: 1,
});

const delivery = (id: string, eventKey: string, nextAttemptAt: number): WebhookDeliveryRecord => ({
  id,
  webhookId: "whk_1",
  userId: "usr_1",
  event: "run.finished",
  eventKey,
  payload: '{"a":1}',
  state: "pending",
  attempts: 0,
  nextAttemptAt,
  lastStatus: null,
  lastError: null,
  createdAt: nextAttemptAt,
  updatedAt: nextAttemptAt,
});

export function runWebhookStoreCases(store: () => Store): void {
  it("queues each webhook event once, hands out due deliveries and records attempts by compare-and-set", async () => {
    const s = store();
    await s.users.create(user("usr_1"));
    await s.users.create(user("usr_2"));
    await s.webhooks.insert({
      id: "whk_1",
      userId: "usr_1",
      url: "https://example.com/hook",
      events: ["run.finished"],
      sealedSecret: "sealed",
      createdAt: 5,
    });
    expect(await s.webhooks.listForUser("usr_1")).toEqual([
      {
        id: "whk_1",
        userId: "usr_1",
        url: "https://example.com/hook",
        events: ["run.finished"],
        sealedSecret: "sealed",
        createdAt: 5,
      },
    ]);
    expect(await s.webhooks.countForUser("usr_1")).toBe(1);
    expect(await s.webhooks.countForUser("usr_2")).toBe(0);
    expect(await s.webhooks.enqueue(delivery("whd_1", "run.finished:run_1", 10))).toBe(true);
    expect(await s.webhooks.enqueue(delivery("whd_2", "run.finished:run_1", 11))).toBe(false);
    expect(await s.webhooks.enqueue(delivery("whd_3", "run.finished:run_2", 20))).toBe(true);
    expect((await s.webhooks.due(15, 10)).map((d) => d.id)).toEqual(["whd_1"]);
    expect((await s.webhooks.due(25, 10)).map((d) => d.id)).toEqual(["whd_1", "whd_3"]);
    const attempt = {
      state: "pending" as const,
      attempts: 1,
      nextAttemptAt: 100,
      lastStatus: 500,
      lastError: "HTTP 500",
      updatedAt: 30,
    };
    expect(await s.webhooks.recordAttempt("whd_1", attempt)).toBe(true);
    // A second replica recording the same attempt finds it already counted.
    expect(await s.webhooks.recordAttempt("whd_1", attempt)).toBe(false);
    expect((await s.webhooks.due(50, 10)).map((d) => d.id)).toEqual(["whd_3"]);
    expect(
      await s.webhooks.recordAttempt("whd_3", {
        state: "delivered",
        attempts: 1,
        nextAttemptAt: null,
        lastStatus: 204,
        lastError: null,
        updatedAt: 40,
      }),
    ).toBe(true);
    const log = await s.webhooks.deliveries("whk_1", 10);
    expect(log.map((d) => [d.id, d.state, d.attempts, d.lastStatus])).toEqual([
      ["whd_3", "delivered", 1, 204],
      ["whd_1", "pending", 1, 500],
    ]);
    expect((await s.webhooks.listAll()).map((w) => w.id)).toEqual(["whk_1"]);
    expect(await s.webhooks.replaceSecret("whk_1", "stale", "resealed")).toBe(false);
    expect(await s.webhooks.replaceSecret("whk_1", "sealed", "resealed")).toBe(true);
    expect((await s.webhooks.get("whk_1"))?.sealedSecret).toBe("resealed");
    expect(await s.webhooks.pruneFinished(41)).toBe(1);
    expect((await s.webhooks.deliveries("whk_1", 10)).map((d) => d.id)).toEqual(["whd_1"]);
    expect(await s.webhooks.delete("usr_2", "whk_1")).toBe(false);
    expect(await s.webhooks.delete("usr_1", "whk_1")).toBe(true);
    expect(await s.webhooks.deliveries("whk_1", 10)).toEqual([]);
    expect(await s.webhooks.get("whk_1")).toBeUndefined();
  });

  it("keeps MCP servers per user with unique names", async () => {
    const s = store();
    await s.users.create(user("usr_1"));
    const server = {
      id: "mcp_1",
      userId: "usr_1",
      name: "files",
      transport: "stdio" as const,
      command: "node",
      args: ["server.js", "--flag"],
      url: null,
      envNames: ["TOKEN"],
      headerNames: [],
      sealed: "sealed",
      createdAt: 3,
    };
    await s.mcpServers.insert(server);
    await expect(s.mcpServers.insert({ ...server, id: "mcp_2" })).rejects.toMatchObject({ code: "conflict" });
    await s.mcpServers.insert({
      ...server,
      id: "mcp_3",
      name: "docs",
      transport: "http",
      command: null,
      args: [],
      url: "https://mcp.example/mcp",
      envNames: [],
      headerNames: ["Authorization"],
    });
    expect((await s.mcpServers.listForUser("usr_1")).map((m) => m.name)).toEqual(["docs", "files"]);
    expect((await s.mcpServers.listForUser("usr_1"))[1]).toEqual(server);
    expect(await s.mcpServers.countForUser("usr_1")).toBe(2);
    expect((await s.mcpServers.listAll()).map((m) => m.id)).toEqual(["mcp_1", "mcp_3"]);
    expect(await s.mcpServers.replaceSealed("mcp_1", "stale", "resealed")).toBe(false);
    expect(await s.mcpServers.replaceSealed("mcp_1", "sealed", "resealed")).toBe(true);
    expect((await s.mcpServers.listForUser("usr_1"))[1]?.sealed).toBe("resealed");
    expect(await s.mcpServers.delete("usr_1", "files")).toBe(true);
    expect(await s.mcpServers.delete("usr_1", "files")).toBe(false);
  });
}
