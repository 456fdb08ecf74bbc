/**
 * The run page as a conversation, in a real headless Chromium against a real server: a built-in
 * agent (against the fake providers) answers in a real sandbox, the reply box sends a follow-up,
 * and the page shows the user's message and the agent's answer that continues the session. The
 * follow-up carries markup: the page must show it as text, never run it.
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

const ADMIN_PASSWORD = "run-reply-test-password";
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
    .screenshot({ path: join(screenshots, "failed-run-reply.png"), fullPage: true })
    .catch(() => undefined);
});

afterAll(async () => {
  await browser?.close();
  await t?.close();
  await fake?.close();
});

describe("the run page's reply box", () => {
  it(
    "sends a follow-up and shows the conversation: the prompts as the user's, the answer that continues the session",
    async () => {
      const api = server().api;
      await api.call("PUT", "/v1/credentials/anthropic", { apiKey: "sk-real-provider-key-123456" });
      const sandbox = await api.createSandbox();
      const started = await api.call<{ id: string }>("POST", "/v1/runs", {
        agent: "builtin",
        prompt: "remember the word heron",
        sandboxId: sandbox,
      });
      expect(started.status).toBe(201);

      await page.goto(`${server().url}/`);
      await page.getByLabel("Name", { exact: true }).fill("admin");
      await page.getByLabel("Password").fill(ADMIN_PASSWORD);
      await page.getByRole("button", { name: "Sign in" }).click();
      await page.getByRole("navigation", { name: "Main" }).waitFor();
      await page.goto(`${server().url}/runs/${started.body.id}`);
      await page.getByText("finished: completed").waitFor();

      const box = page.getByRole("textbox", { name: "Follow-up for builtin" });
      const follow = `which bird was it? ${MARKUP}`;
      await box.fill(follow);
      await page.getByRole("button", { name: "Send" }).click();
      // The first prompt opens the conversation once it has a follow-up; the follow-up is turn 2.
      const messages = page.getByTestId("run-user-message");
      await messages.nth(1).waitFor();
      expect(await messages.nth(0).textContent()).toContain("remember the word heron");
      expect(await messages.nth(1).getAttribute("data-turn")).toBe("2");
      expect(await messages.nth(1).textContent()).toContain(follow);
      await page.getByText("finished: completed").nth(1).waitFor();
      const output = await page.getByTestId("run-output").textContent();
      expect(output).toContain('Following up: you asked "which bird was it?');
      expect(output).toContain('after you first asked "remember the word heron"');
      expect(await box.inputValue()).toBe("");
      // Markup in a message stayed text: nothing was made from it and nothing ran.
      expect(await page.locator(".run-output img").count()).toBe(0);
      expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();

      // A replay from the start shows both turns again, in one stream.
      await page.getByRole("button", { name: "Replay from the start" }).click();
      await page.getByText("finished: completed").nth(1).waitFor();
      expect(await page.getByTestId("run-user-message").count()).toBe(2);
      await page.screenshot({ path: join(screenshots, "run-reply.png"), fullPage: true });
    },
    STEP_MS,
  );
});
