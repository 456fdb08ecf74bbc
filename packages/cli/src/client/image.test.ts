/**
 * `polydev image …` as child processes against a real server with an image store on plain
 * directories; RUN steps go through the recording stand-in runner (the one double, see
 * recording-run-step.ts).
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TestServer } from "../../../server/src/testing/harness.js";
import { startTestServer } from "../../../server/src/testing/harness.js";
import { ociArchive } from "../../../server/src/testing/image-archives.js";
import { PlainImageStorage } from "../../../server/src/testing/plain-image-storage.js";
import { RecordingRunStep } from "../../../server/src/testing/recording-run-step.js";
import { runCli } from "../testing/cli-process.js";

let t: TestServer;
let work: string;

function env(): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, HOME: work, POLYDEV_URL: t.url, POLYDEV_API_KEY: t.adminKey };
}

beforeAll(async () => {
  t = await startTestServer(
    {},
    {
      images: ({ dataDir }) => {
        const storage = new PlainImageStorage(join(dataDir, "storage"));
        return { storage, runStep: new RecordingRunStep(storage).run };
      },
    },
  );
  work = await mkdtemp(join(tmpdir(), "polydev-cli-images-"));
});
afterAll(async () => {
  await t?.close();
  if (work) await rm(work, { recursive: true, force: true });
});

describe("polydev image", () => {
  it("imports a tar, builds from a context directory and a Dockerfile, lists and removes", async () => {
    const archive = join(work, "sample.tar");
    await writeFile(archive, await ociArchive());
    const imported = await runCli(["image", "import", "alice/sample:1", archive], { env: env() });
    expect(imported.code, imported.stderr).toBe(0);
    expect(imported.stdout).toMatch(/^alice\/sample:1 sha256:[0-9a-f]{64}\n$/);

    const context = join(work, "ctx");
    await mkdir(join(context, "src"), { recursive: true });
    await writeFile(join(context, "Dockerfile"), "FROM alice/sample:1\nCOPY src/ /app/\nRUN make\n");
    await writeFile(join(context, "src", "main.c"), "int main(void) { return 0; }\n");
    const built = await runCli(["image", "build", "alice/app:1", context], { env: env() });
    expect(built.code, built.stderr).toBe(0);
    expect(built.stdout).toContain("Step 2/3 : COPY src/ /app/");
    expect(built.stdout).toContain("ran: /bin/sh -c make");
    expect(built.stderr).toContain("alice/app:1 is ready");

    const dockerfile = join(work, "Failing.Dockerfile");
    await writeFile(dockerfile, "FROM alice/sample:1\nRUN exit 7\n");
    const failed = await runCli(["image", "build", "-f", dockerfile, "alice/broken:1"], { env: env() });
    expect(failed.code).toBe(1);
    expect(failed.stderr).toContain("step 2/2 (line 2) failed: RUN exit 7: the command exited with code 7");

    const unknownFrom = join(work, "Unknown.Dockerfile");
    await writeFile(unknownFrom, "FROM nobody/nothing:1\n");
    const refused = await runCli(["image", "build", "-f", unknownFrom, "alice/x:1"], { env: env() });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("(invalid_request)");

    const listed = await runCli(["image", "ls"], { env: env() });
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toMatch(/alice\/app:1\s+ready/);
    expect(listed.stdout).toMatch(/alice\/broken:1\s+failed/);

    const removed = await runCli(["image", "rm", "alice/app:1", "alice/none:1"], { env: env() });
    expect(removed.code).toBe(1);
    expect(removed.stdout).toBe("alice/app:1\n");
    expect(removed.stderr).toContain("(not_found)");
    const after = await runCli(["image", "ls", "--json"], { env: env() });
    expect((JSON.parse(after.stdout) as { name: string }[]).map((i) => i.name)).toEqual([
      "alice/broken:1",
      "alice/sample:1",
    ]);
  }, 120_000);
});
