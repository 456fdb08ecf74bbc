import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApiClient, TestServer } from "./testing/harness.js";
import { createUser, startTestServer } from "./testing/harness.js";

let t: TestServer;
let api: ApiClient;
let id: string;
beforeAll(async () => {
  t = await startTestServer();
  api = await createUser(t.api, "files-user");
  id = await api.createSandbox();
});
afterAll(async () => {
  await t?.close();
});

async function upload(path: string, body: Uint8Array | string, contentType = "application/octet-stream") {
  return fetch(`${t.url}/v1/sandboxes/${id}/files/content?path=${encodeURIComponent(path)}`, {
    method: "PUT",
    headers: { authorization: `Bearer ${api.key}`, "content-type": contentType },
    body,
  });
}

describe("files", () => {
  it("writes, reads, lists, stats, makes directories and removes", async () => {
    const made = await api.call("POST", `/v1/sandboxes/${id}/files/mkdir`, { path: "docs/notes" });
    expect(made.status).toBe(200);
    const put = await upload("docs/notes/a.txt", "hello files\n", "text/plain");
    expect(put.status).toBe(201);
    expect(await put.json()).toMatchObject({ sizeBytes: 12 });

    const read = await fetch(`${t.url}/v1/sandboxes/${id}/files/content?path=docs/notes/a.txt`, {
      headers: { authorization: `Bearer ${api.key}` },
    });
    expect(await read.text()).toBe("hello files\n");
    const seenByShell = await api.exec(id, "cat /home/user/docs/notes/a.txt");
    expect(seenByShell.body.stdout).toBe("hello files\n");

    const list = await api.call<{ items: { name: string; type: string; sizeBytes: number }[] }>(
      "GET",
      `/v1/sandboxes/${id}/files?path=docs/notes`,
    );
    expect(list.body.items).toEqual([
      expect.objectContaining({ name: "a.txt", type: "file", sizeBytes: 12 }),
    ]);
    const stat = await api.call("GET", `/v1/sandboxes/${id}/files/stat?path=docs`);
    expect(stat.body).toMatchObject({ type: "directory" });

    const removed = await api.call("DELETE", `/v1/sandboxes/${id}/files?path=docs&recursive=true`);
    expect(removed.status).toBe(200);
    const gone = await api.call("GET", `/v1/sandboxes/${id}/files/stat?path=docs`);
    expect(gone.status).toBe(404);
  });

  it("streams a large binary file in and out intact", async () => {
    const data = randomBytes(24 * 1024 * 1024);
    expect((await upload("big.bin", data)).status).toBe(201);
    const read = await fetch(`${t.url}/v1/sandboxes/${id}/files/content?path=big.bin`, {
      headers: { authorization: `Bearer ${api.key}` },
    });
    const back = Buffer.from(await read.arrayBuffer());
    expect(back.length).toBe(data.length);
    expect(back.equals(data)).toBe(true);
  });

  it.each(["../etc/passwd", "/etc/passwd", "a/../../x", "link-out/passwd"])(
    "refuses a path escaping the home: %s",
    async (path) => {
      await api.exec(id, "ln -sfn /etc link-out");
      const read = await api.call<{ error: { code: string; message: string } }>(
        "GET",
        `/v1/sandboxes/${id}/files/content?path=${encodeURIComponent(path)}`,
      );
      expect(read.status).toBe(400);
      expect(read.body.error.code).toBe("path_outside_home");
      const write = await upload(path, "x");
      expect(write.status).toBe(400);
    },
  );

  it("moves files and directories, answering what went wrong by code", async () => {
    await upload("moving/a.txt", "a");
    const rename = (from: string, to: string) =>
      api.call<{ error?: { code: string } }>("POST", `/v1/sandboxes/${id}/files/rename`, { from, to });
    expect((await rename("moving/a.txt", "moving/b.txt")).status).toBe(200);
    expect((await rename("moving", "moved")).status).toBe(200);
    expect((await api.exec(id, "cat moved/b.txt")).body.stdout).toBe("a");
    await upload("full/x", "x");
    expect(await rename("moved", "full")).toMatchObject({
      status: 409,
      body: { error: { code: "conflict" } },
    });
    expect(await rename("nope", "x")).toMatchObject({ status: 404, body: { error: { code: "not_found" } } });
    await api.exec(id, "ln -sfn /etc link-out");
    expect(await rename("moved", "link-out/moved")).toMatchObject({
      status: 400,
      body: { error: { code: "path_outside_home" } },
    });
    expect(await rename("link-out/passwd", "stolen")).toMatchObject({
      status: 400,
      body: { error: { code: "path_outside_home" } },
    });
    expect((await rename("", "x")).status).toBe(400);
  });

  it("answers a missing file with 404 not_found", async () => {
    const response = await api.call("GET", `/v1/sandboxes/${id}/files/content?path=nope.txt`);
    expect(response.status).toBe(404);
    expect(response.body).toMatchObject({ error: { code: "not_found" } });
  });
});
