/** `polydev.events()` against a real server: an async iterator that resumes by itself. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TestServer } from "../../server/src/testing/harness.js";
import { createUser, startTestServer } from "../../server/src/testing/harness.js";
import type { PolydevEvent } from "./client.js";
import { Polydev } from "./client.js";
import { ForbiddenError } from "./errors.js";

let t: TestServer;
let polydev: Polydev;

beforeAll(async () => {
  t = await startTestServer();
  const user = await createUser(t.api, "sdk-events");
  polydev = new Polydev({ baseUrl: t.url, apiKey: user.key });
});
afterAll(async () => {
  await t?.close();
});

describe("polydev.events()", () => {
  it("yields the user's sandbox states and picks up after a given event id", async () => {
    const box = await polydev.sandboxes.create({ network: "none" });
    const controller = new AbortController();
    const seen: PolydevEvent[] = [];
    // From the beginning of what the server keeps: the create already happened.
    for await (const event of polydev.events({ after: "0-0", signal: controller.signal })) {
      seen.push(event);
      if (event.data.state === "running") controller.abort();
    }
    expect(seen.map((e) => [e.type, e.data.sandboxId, e.data.state])).toEqual([
      ["sandbox.state", box.id, "creating"],
      ["sandbox.state", box.id, "running"],
    ]);

    await polydev.sandboxes.destroy(box.id);
    const later = new AbortController();
    const after: string[] = [];
    for await (const event of polydev.events({ after: seen[0]?.id, signal: later.signal })) {
      after.push(String(event.data.state));
      if (event.data.state === "destroyed") later.abort();
    }
    expect(after).toEqual(["running", "destroying", "destroyed"]);
  });

  it("throws the API's error class when the stream is refused", async () => {
    const iterator = polydev.events({ all: true });
    await expect(iterator.next()).rejects.toBeInstanceOf(ForbiddenError);
  });
});
