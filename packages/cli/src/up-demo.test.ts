/** `polydev up --demo`: a new user runs an agent end to end with no keys. */

import type { ChildProcess } from "node:child_process";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { StoragePool } from "@polydev/images";
import { afterAll, describe, expect, it } from "vitest";

const repoRoot = resolve(import.meta.dirname, "../../..");
let child: ChildProcess | undefined;
let dataDir = "";

afterAll(async () => {
  if (child && child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((done) => child?.once("exit", done));
    child.kill("SIGTERM");
    await exited;
  }
  // The server leaves its storage pool mounted (its sandboxes outlive it): unmounted here.
  if (dataDir) {
    await new StoragePool({ mountPoint: join(dataDir, "storage"), imageFile: join(dataDir, "storage.xfs") })
      .close()
      .catch(() => undefined);
    await rm(dataDir, { recursive: true, force: true });
  }
});

describe.skipIf(!existsSync("/usr/local/bin/claude"))(
  "polydev up --demo (skipped without the CLIs from scripts/ensure.sh)",
  () => {
    it("starts with fake providers and demo credentials, and a claude run creates a file", async () => {
      dataDir = await mkdtemp(join(tmpdir(), "polydev-demo-"));
      child = spawn(
        "node",
        [
          "--conditions=source",
          "--import",
          "tsx",
          join(repoRoot, "packages/cli/src/main.ts"),
          "up",
          "--demo",
          "--port",
          "0",
          "--data-dir",
          dataDir,
        ],
        {
          cwd: repoRoot,
          env: { ...process.env, POLYDEV_LOG_LEVEL: "warn" },
          stdio: ["ignore", "pipe", "pipe"],
        },
      );
      let output = "";
      const url = await new Promise<string>((resolveUrl, reject) => {
        const onData = (chunk: Buffer): void => {
          output += chunk.toString();
          const match = /running at (http:\/\/\S+)/.exec(output);
          if (match?.[1] && output.includes("demo mode")) resolveUrl(match[1]);
        };
        child?.stdout?.on("data", onData);
        child?.stderr?.on("data", onData);
        child?.once("exit", (code) => reject(new Error(`exited ${code}: ${output}`)));
      });
      const key = (await readFile(join(dataDir, "admin-api-key"), "utf8")).trim();
      const headers = { authorization: `Bearer ${key}`, "content-type": "application/json" };
      const created = await fetch(`${url}/v1/runs`, {
        method: "POST",
        headers,
        body: JSON.stringify({ agent: "claude", prompt: "create file hello.txt" }),
      });
      expect(created.status).toBe(201);
      const run = (await created.json()) as { id: string; sandboxId: string };
      let state = "queued";
      for (let i = 0; i < 600 && !["succeeded", "failed", "cancelled", "timed_out"].includes(state); i++) {
        await new Promise((r) => setTimeout(r, 100));
        state = ((await (await fetch(`${url}/v1/runs/${run.id}`, { headers })).json()) as { state: string })
          .state;
      }
      expect(state).toBe("succeeded");
      const file = await fetch(`${url}/v1/sandboxes/${run.sandboxId}/files/content?path=hello.txt`, {
        headers,
      });
      expect(await file.text()).toContain("hello from polydev");
      const destroyed = await fetch(`${url}/v1/sandboxes/${run.sandboxId}`, { method: "DELETE", headers });
      expect(destroyed.status).toBe(200);
    }, 90_000);
  },
);
