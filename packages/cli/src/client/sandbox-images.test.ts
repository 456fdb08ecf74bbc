/**
 * `polydev sandbox create --image` and `polydev sandbox snapshot` as child processes against a
 * real server with its image store on (the storage pool, polydev/base from the host's test cache,
 * real image sandboxes). Needs root and xfsprogs; without them it is skipped, saying why.
 */
import { existsSync } from "node:fs";
import { testBaseRootfs, testImagesUnavailable, testToolbox } from "@polydev/images/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TestServer } from "../../../server/src/testing/harness.js";
import {
  IMAGE_BUILD_TIMEOUT_MS,
  startTestServer,
  waitForImage,
} from "../../../server/src/testing/harness.js";
import { runCli } from "../testing/cli-process.js";

const missing = testImagesUnavailable() ?? (existsSync("/usr/sbin/mkfs.xfs") ? null : "no xfsprogs");
const SKIP = missing === null ? "" : ` (skipped: no image store here: ${missing})`;

let t: TestServer | undefined;

function env(): NodeJS.ProcessEnv {
  if (!t) throw new Error("the test server did not start");
  return { PATH: process.env.PATH, HOME: t.dataDir, POLYDEV_URL: t.url, POLYDEV_API_KEY: t.adminKey };
}

beforeAll(async () => {
  if (missing !== null) return;
  await Promise.all([testBaseRootfs(), testToolbox()]);
  t = await startTestServer({ images: { enabled: true } });
  await waitForImage(t.api, "polydev/base");
}, IMAGE_BUILD_TIMEOUT_MS);
afterAll(async () => {
  await t?.close();
});

describe.skipIf(missing !== null)(`polydev sandbox with images${SKIP}`, () => {
  it("creates from an image, snapshots the sandbox, and starts another from the snapshot", async () => {
    const created = await runCli(["sandbox", "create", "--image", "polydev/base", "--json"], { env: env() });
    expect(created.code, created.stderr).toBe(0);
    const box = JSON.parse(created.stdout) as { id: string; image: string | null };
    expect(box.image).toMatch(/^sha256:[0-9a-f]{64}$/);
    const wrote = await runCli(["sandbox", "exec", box.id, "--", "echo kept > snapped.txt"], { env: env() });
    expect(wrote.code, wrote.stderr).toBe(0);

    const snapshot = await runCli(["sandbox", "snapshot", box.id, "alice/snap:1"], { env: env() });
    expect(snapshot.code, snapshot.stderr).toBe(0);
    expect(snapshot.stdout).toMatch(/^alice\/snap:1 sha256:[0-9a-f]{64}\n$/);
    const listed = await runCli(["image", "ls"], { env: env() });
    expect(listed.stdout).toMatch(/alice\/snap:1\s+ready/);

    const again = await runCli(["sandbox", "create", "--image", "alice/snap:1"], { env: env() });
    expect(again.code, again.stderr).toBe(0);
    const read = await runCli(["sandbox", "exec", again.stdout.trim(), "--", "cat snapped.txt"], {
      env: env(),
    });
    expect(read).toMatchObject({ code: 0, stdout: "kept\n" });

    const taken = await runCli(["sandbox", "snapshot", box.id, "alice/snap:1"], { env: env() });
    expect(taken.code).toBe(1);
    expect(taken.stderr).toMatch(/^polydev: .+ \(conflict\)\n$/);
    const unknown = await runCli(["sandbox", "create", "--image", "nobody/nothing:1"], { env: env() });
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/nobody\/nothing:1/);
  }, 120_000);
});
