/**
 * The run page's Changes tab in a real headless Chromium against a real server: a built-in agent
 * (against the fake providers) edits a project in a real sandbox, and the tab shows the changed
 * files, the check and the diff drawn by diff2html. The agent also writes a file whose name and
 * content are markup: the page must show it as text, never run it.
 */
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { FakeProviders } from "@polydev/fake-providers";
import { startFakeProviders } from "@polydev/fake-providers";
import type { Browser, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { TestServer } from "../../server/src/testing/harness.js";
import { startTestServer } from "../../server/src/testing/harness.js";
import { distDir, ensureDashboardBuilt, launchChromium, screenshots } from "./testing/browser-harness.js";

const ADMIN_PASSWORD = "run-changes-test-password";
const STEP_MS = 120_000;
const MARKUP = `<img src=x onerror="window.__pwned=1">`;

let fake: FakeProviders | undefined;
let t: TestServer | undefined;
let browser: Browser | undefined;
let page: Page;

function server(): TestServer {
  if (!t) throw new Error("the test server did not start");
  return t;
}

beforeAll(async () => {
  await ensureDashboardBuilt();
  await mkdir(screenshots, { recursive: true });
  fake = await startFakeProviders();
  t = await startTestServer({
    adminPassword: ADMIN_PASSWORD,
    webDir: distDir,
    upstreams: { anthropic: fake.url, openai: fake.url, gemini: fake.url },
  });
  browser = await launchChromium();
  page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
}, STEP_MS);

afterEach(async (context) => {
  if (context.task.result?.state !== "fail" || !browser) return;
  await page
    .screenshot({ path: join(screenshots, "failed-run-changes.png"), fullPage: true })
    .catch(() => undefined);
});

afterAll(async () => {
  await browser?.close();
  await t?.close();
  await fake?.close();
});

describe("the run page's Changes tab", () => {
  it(
    "shows the changed files, the failed check and the diff, with markup from the sandbox as text",
    async () => {
      const api = server().api;
      await api.call("PUT", "/v1/credentials/anthropic", { apiKey: "sk-real-provider-key-123456" });
      const sandbox = await api.createSandbox();
      await api.exec(sandbox, ["/bin/sh", "-c", "mkdir -p app && echo one > app/notes.txt"]);
      expect(
        (await api.call("POST", `/v1/sandboxes/${sandbox}/projects`, { path: "app", check: "exit 2" }))
          .status,
      ).toBe(201);
      fake?.setScript([
        {
          toolCall: {
            tool: "run_command",
            arguments: { command: `echo two >> notes.txt && printf '%s\\n' '${MARKUP}' > '${MARKUP}.txt'` },
          },
        },
        { text: "Done." },
      ]);
      const started = await api.call<{ id: string }>("POST", "/v1/runs", {
        agent: "builtin",
        prompt: "edit",
        sandboxId: sandbox,
        project: "projects/app",
      });
      expect(started.status).toBe(201);
      for (let i = 0; i < 300; i++) {
        const run = await api.call<{ state: string }>("GET", `/v1/runs/${started.body.id}`);
        if (run.body.state !== "queued" && run.body.state !== "running") break;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      fake?.setScript(undefined);

      await page.goto(`${server().url}/`);
      await page.getByLabel("Name", { exact: true }).fill("admin");
      await page.getByLabel("Password").fill(ADMIN_PASSWORD);
      await page.getByRole("button", { name: "Sign in" }).click();
      await page.getByRole("navigation", { name: "Main" }).waitFor();
      await page.goto(`${server().url}/runs/${started.body.id}`);
      await page.getByRole("tab", { name: "Changes" }).click();
      const files = page.getByRole("list", { name: "Changed files" });
      await files.waitFor();
      expect(await files.textContent()).toContain("notes.txt");
      expect(await files.textContent()).toContain(`${MARKUP}.txt`);
      expect(await page.locator("[data-check]").textContent()).toContain("failed (exit 2)");
      await page.locator(".d2h-file-wrapper").first().waitFor();
      expect(await page.locator(".diff-view").textContent()).toContain("two");
      expect(await page.locator(".diff-view").textContent()).toContain(MARKUP);
      // Markup from the sandbox stayed text: no element was made from it and nothing ran.
      expect(await page.locator(".run-changes img").count()).toBe(0);
      expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
      await page.screenshot({ path: join(screenshots, "run-changes.png"), fullPage: true });
    },
    STEP_MS,
  );
});
