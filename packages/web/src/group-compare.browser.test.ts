/**
 * Comparing a group's agents and keeping the winner, in a real headless Chromium against a real
 * server (real SQLite, real bubblewrap sandbox, git inside it, the built-in agent and the real
 * Codex CLI against the fake providers). Through the UI only: add a project, pick it, start two
 * agents, open the compare page, read both diffs and checks, keep one, see the other conflict.
 * Browser notifications are observed by wrapping `window.Notification` in an init script.
 */
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { FakeProviders, FakeRequestView } from "@polydev/fake-providers";
import { startFakeProviders } from "@polydev/fake-providers";
import type { Browser, BrowserContext, Locator, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { TestServer } from "../../server/src/testing/harness.js";
import { startTestServer } from "../../server/src/testing/harness.js";
import { distDir, ensureDashboardBuilt, launchChromium, screenshots } from "./testing/browser-harness.js";

const ADMIN_PASSWORD = "group-compare-test-password";
const STEP_MS = 240_000;
const CODEX = "/usr/local/bin/codex";

/** Markup a sandbox wrote, in a file name and its content: the page must show it as text. */
const MARKUP = `<img src=x onerror="window.__pwned=1">`;
/**
 * The built-in agent and Codex each rewrite the README their own way (so keeping both conflicts);
 * the built-in agent also writes a file named like markup.
 */
const BUILTIN_EDIT = `printf 'builtin was here\\n' > README && printf 'b\\n' > builtin.txt && printf '%s\\n' '${MARKUP}' > '${MARKUP}.txt'`;
const CODEX_EDIT = "printf 'codex was here\\n' > README";
/** Passes only in the built-in agent's copy. */
const CHECK = "grep -q builtin README";

let fake: FakeProviders | undefined;
let t: TestServer | undefined;
let browser: Browser | undefined;
let context: BrowserContext;
let page: Page;
let sandboxId = "";
let groupId = "";
const pageErrors: string[] = [];

function server(): TestServer {
  if (!t) throw new Error("the test server did not start");
  return t;
}

/** Each agent's first conversational turn edits; anything else (tool results, side requests) gets the default. */
function editOnce(command: string, marker: (view: FakeRequestView) => boolean) {
  return (view: FakeRequestView) =>
    view.lastIsToolResult || !marker(view) ? undefined : { toolCall: { command } };
}

async function sh(line: string): Promise<string> {
  const result = await server().api.exec(sandboxId, ["/bin/sh", "-c", line]);
  expect(result.body.exitCode, result.body.stderr).toBe(0);
  return result.body.stdout;
}

function card(agent: string): Locator {
  return page.locator(".compare-card").filter({ has: page.getByRole("heading", { name: agent }) });
}

beforeAll(async () => {
  await ensureDashboardBuilt();
  await mkdir(screenshots, { recursive: true });
  fake = await startFakeProviders();
  t = await startTestServer({
    adminPassword: ADMIN_PASSWORD,
    webDir: distDir,
    upstreams: { anthropic: fake.url, openai: fake.url, gemini: fake.url },
    modelPrices: { "*": { inputPerMTokUsd: 3, outputPerMTokUsd: 15 } },
  });
  for (const provider of ["anthropic", "openai"]) {
    const stored = await t.api.call("PUT", `/v1/credentials/${provider}`, { apiKey: `demo-${provider}-key` });
    expect(stored.status).toBe(200);
  }
  sandboxId = await t.api.createSandbox({ name: "compare" });
  await sh("mkdir -p app && printf 'first\\n' > app/README");
  browser = await launchChromium();
  context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  await context.grantPermissions(["notifications"], { origin: t.url });
  // Records every notification and every event stream that opened, before any page script runs.
  await context.addInitScript(() => {
    const recorded: { title: string; body?: string; tag?: string }[] = [];
    const streams: string[] = [];
    Object.assign(window, { __notifications: recorded, __streams: streams });
    const RealNotification = window.Notification;
    function RecordingNotification(title: string, options?: NotificationOptions) {
      recorded.push({
        title,
        ...(options?.body ? { body: options.body } : {}),
        ...(options?.tag ? { tag: options.tag } : {}),
      });
      return new RealNotification(title, options);
    }
    Object.defineProperty(RecordingNotification, "permission", { get: () => RealNotification.permission });
    Object.assign(RecordingNotification, {
      requestPermission: (...args: Parameters<typeof Notification.requestPermission>) =>
        RealNotification.requestPermission(...args),
    });
    Object.assign(window, { Notification: RecordingNotification });
    const RealEventSource = window.EventSource;
    class RecordingEventSource extends RealEventSource {
      constructor(url: string | URL, init?: EventSourceInit) {
        super(url, init);
        this.addEventListener("open", () => streams.push(new URL(String(url)).pathname));
      }
    }
    Object.assign(window, { EventSource: RecordingEventSource });
  });
  page = await context.newPage();
  page.on("pageerror", (error) => pageErrors.push(error.message));
}, STEP_MS);

afterEach(async (test) => {
  if (test.task.result?.state !== "fail" || !browser) return;
  await page
    .screenshot({ path: join(screenshots, "failed-group-compare.png"), fullPage: true })
    .catch(() => undefined);
});

afterAll(async () => {
  fake?.setScript(undefined);
  await browser?.close();
  await t?.close();
  await fake?.close();
});

describe.skipIf(!existsSync(CODEX))(
  `comparing a group's agents and keeping one${existsSync(CODEX) ? "" : " (skipped: the Codex CLI that scripts/ensure.sh installs as root is missing)"}`,
  () => {
    it(
      "adds a project and starts two agents on it from the run form, notifying when the group ends",
      async () => {
        await page.goto(`${server().url}/`);
        await page.getByLabel("Name", { exact: true }).fill("admin");
        await page.getByLabel("Password").fill(ADMIN_PASSWORD);
        await page.getByRole("button", { name: "Sign in" }).click();
        await page.getByRole("navigation", { name: "Main" }).waitFor();

        // Notifications are asked for from the button, and the events stream opens only then.
        expect(
          await page.evaluate(() => (window as unknown as { __streams: string[] }).__streams),
        ).not.toContain("/v1/events");
        await page.getByRole("button", { name: "Notify me when runs end" }).click();
        await page.getByRole("button", { name: "Notifications on" }).waitFor();
        await expect
          .poll(() => page.evaluate(() => (window as unknown as { __streams: string[] }).__streams))
          .toContain("/v1/events");

        await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Runs" }).click();
        await page.getByLabel("Sandbox").selectOption(sandboxId);
        // The sandbox has no project yet: none is picked.
        const projectSelect = page.getByRole("combobox", { name: /^Project/ });
        await expect.poll(() => projectSelect.locator("option").count()).toBe(1);
        expect(await projectSelect.inputValue()).toBe("");

        await page.getByText("Add a project").click();
        // A clone that cannot happen (this sandbox has no network) is refused, and the reason shown.
        await page.getByLabel("Repository URL or folder").fill("git://127.0.0.1:9/none.git");
        await page.getByRole("button", { name: "Add project" }).click();
        const refused = page.getByRole("alert").filter({ hasText: "Could not add the project" });
        await refused.waitFor({ timeout: 60_000 });
        // A folder of the sandbox becomes a project, with a default check, and is picked at once.
        await page.getByLabel("Repository URL or folder").fill("app");
        await page.getByLabel("Default check").fill(CHECK);
        await page.getByRole("button", { name: "Add project" }).click();
        await page
          .getByRole("status")
          .filter({ hasText: "Added app (projects/app)" })
          .waitFor({ timeout: 60_000 });
        await expect.poll(() => projectSelect.inputValue()).toBe("projects/app");
        expect(await page.getByLabel("Check command").getAttribute("placeholder")).toBe(`default: ${CHECK}`);
        const listed = await server().api.call<{ items: { path: string; check: string | null }[] }>(
          "GET",
          `/v1/sandboxes/${sandboxId}/projects`,
        );
        expect(listed.body.items).toEqual([expect.objectContaining({ path: "projects/app", check: CHECK })]);

        fake?.setScript({
          anthropic: editOnce(BUILTIN_EDIT, (view) => view.toolNames.includes("run_command")),
          openai: editOnce(CODEX_EDIT, (view) => view.toolNames.length > 0),
        });
        await page.getByLabel("Prompt").fill("Rewrite the README");
        await page.getByRole("checkbox", { name: "Codex" }).check();
        await page.getByRole("button", { name: "Start 2 runs" }).click();
        await page.waitForURL(/\/runs\/[^/]+,[^/]+$/);

        // Both runs name the project; the group is reachable from the run view.
        const runIds = decodeURIComponent(new URL(page.url()).pathname.split("/")[2] ?? "").split(",");
        const groups = new Set<string | null>();
        for (const id of runIds) {
          groups.add(
            (await server().api.call<{ groupId: string | null }>("GET", `/v1/runs/${id}`)).body.groupId,
          );
        }
        expect(groups.size).toBe(1);
        groupId = [...groups][0] ?? "";
        expect(groupId).toMatch(/^grp_/);
        await page.getByRole("link", { name: "Compare and keep" }).click();
        await page.waitForURL(`**/groups/${groupId}`);
        await page.getByText("All 2 agents have ended.").waitFor({ timeout: 180_000 });
        fake?.setScript(undefined);

        await expect
          .poll(
            () =>
              page.evaluate(
                () =>
                  (window as unknown as { __notifications: { title: string; tag?: string }[] })
                    .__notifications,
              ),
            { timeout: 30_000 },
          )
          .toContainEqual(
            expect.objectContaining({ title: "All 2 agents finished", tag: `polydev-group-${groupId}` }),
          );
        const notices = await page.evaluate(
          () => (window as unknown as { __notifications: { body?: string }[] }).__notifications,
        );
        expect(notices[0]?.body).toContain("Rewrite the README");
        // One notice for the group, not one per agent.
        expect(notices).toHaveLength(1);
      },
      STEP_MS,
    );

    it(
      "notifies when a lone run ends, naming its agent and prompt",
      async () => {
        const started = await server().api.call<{ id: string }>("POST", "/v1/runs", {
          agent: "builtin",
          prompt: "Say hello on your own",
          sandboxId,
        });
        expect(started.status).toBe(201);
        await expect
          .poll(
            () =>
              page.evaluate(
                () =>
                  (window as unknown as { __notifications: { title: string; tag?: string }[] })
                    .__notifications,
              ),
            { timeout: 60_000 },
          )
          .toContainEqual({
            title: "Built-in agent finished",
            body: "Say hello on your own",
            tag: `polydev-run-${started.body.id}`,
          });
      },
      STEP_MS,
    );

    it(
      "shows each agent's time, tokens, cost, check, files and a side-by-side diff",
      async () => {
        expect(groupId, "the group was started by the previous test").not.toBe("");
        await page.goto(`${server().url}/groups/${groupId}`);
        await page.getByText("All 2 agents have ended.").waitFor({ timeout: 30_000 });
        const builtin = card("Built-in agent");
        const codex = card("Codex");
        for (const agent of [builtin, codex]) {
          await agent.locator('[data-state="succeeded"]').waitFor();
          expect(await agent.locator('[data-figure="time"]').textContent()).toMatch(/\d s$/);
          expect(await agent.locator('[data-figure="tokens"]').textContent()).toMatch(/^\d+ in \/ \d+ out$/);
          await expect.poll(() => agent.locator('[data-figure="cost"]').textContent()).toMatch(/^\$\d/);
        }
        await expect.poll(() => builtin.locator("[data-check]").textContent()).toContain("passed");
        expect(await codex.locator("[data-check]").textContent()).toContain("failed (exit 1)");
        const builtinFiles = await builtin
          .getByRole("list", { name: "Files Built-in agent changed" })
          .textContent();
        expect(builtinFiles).toContain("README");
        expect(builtinFiles).toContain("builtin.txt");
        expect(builtinFiles).toContain(`${MARKUP}.txt`);
        const codexFiles = await codex.getByRole("list", { name: "Files Codex changed" }).textContent();
        expect(codexFiles).toContain("README");
        expect(codexFiles).not.toContain("builtin.txt");

        // diff2html draws each agent's diff side by side: the old line left, the new one right.
        const diffs = page.locator(".diff-view");
        await expect.poll(() => diffs.count()).toBe(2);
        expect(
          await page.locator('.diff-view[data-layout="side-by-side"] .d2h-file-side-diff').count(),
        ).toBeGreaterThan(0);
        const builtinDiff = page.getByRole("region", { name: /^Diff of Built-in agent/ });
        const codexDiff = page.getByRole("region", { name: /^Diff of Codex/ });
        expect(await builtinDiff.textContent()).toContain("builtin was here");
        expect(await builtinDiff.textContent()).toContain("first");
        expect(await codexDiff.textContent()).toContain("codex was here");
        expect(await codexDiff.textContent()).not.toContain("builtin was here");
        // Markup from the sandbox stayed text on the compare page: no element made of it, nothing ran.
        expect(await builtinDiff.textContent()).toContain(MARKUP);
        expect(await page.locator("main img").count()).toBe(0);
        expect(
          await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned),
        ).toBeUndefined();
        await page.screenshot({ path: join(screenshots, "group-compare.png"), fullPage: true });
        await page.getByRole("button", { name: "Inline" }).click();
        await page.locator('.diff-view[data-layout="line-by-line"]').first().waitFor();
        expect(await page.locator(".d2h-file-side-diff").count()).toBe(0);
        expect(pageErrors).toEqual([]);
      },
      STEP_MS,
    );

    it(
      "keeps the winner into the project, and shows the conflict when the other one is kept too",
      async () => {
        expect(groupId, "the group was started by the first test").not.toBe("");
        await page.goto(`${server().url}/groups/${groupId}`);
        const builtin = card("Built-in agent");
        const codex = card("Codex");
        await builtin.getByRole("button", { name: "Keep this one" }).click();
        const kept = builtin.locator("[data-kept]");
        await kept.waitFor({ timeout: 60_000 });
        expect(await kept.textContent()).toMatch(
          /Kept on branch polydev\/\S+ \(commit [0-9a-f]{12}\), merged/,
        );
        // The project the group started from now holds the winner's change.
        expect(await sh("cat projects/app/README")).toBe("builtin was here\n");
        expect(await sh("git -C projects/app status --porcelain")).toBe("");

        // Codex rewrote the same line: its keep conflicts, and the page names the file.
        await codex.getByRole("button", { name: "Keep this one" }).click();
        const conflict = codex.locator("[data-conflict]");
        await conflict.waitFor({ timeout: 60_000 });
        expect(await conflict.getByRole("list", { name: "Conflicting files" }).textContent()).toContain(
          "README",
        );
        // Nothing was lost: the project still holds the kept change, its working tree clean.
        expect(await sh("cat projects/app/README")).toBe("builtin was here\n");
        expect(await sh("git -C projects/app status --porcelain")).toBe("");
        await page.screenshot({ path: join(screenshots, "group-keep.png"), fullPage: true });

        // After a reload the kept run still says so (the changes carry the keep).
        await page.reload();
        await builtin.locator("[data-kept]").waitFor({ timeout: 30_000 });
      },
      STEP_MS,
    );
  },
);
