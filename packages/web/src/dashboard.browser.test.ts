/**
 * The dashboard in a real headless Chromium against a real server (real SQLite, real bubblewrap
 * sandboxes, fake providers on loopback): sign in, create a sandbox, use its terminal across a
 * reload, move a file both ways, stream a built-in agent run, sign out. Each page is saved as a
 * screenshot in test-artifacts/screenshots/ for a human to look at.
 */
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import type { FakeProviders } from "@polydev/fake-providers";
import { startFakeProviders } from "@polydev/fake-providers";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { TestServer } from "../../server/src/testing/harness.js";
import { startTestServer } from "../../server/src/testing/harness.js";
import { GOOD_CODE, STAND_IN_LOGIN_FLOWS } from "../../server/src/testing/stand-in-logins.js";
import { distDir, ensureDashboardBuilt, launchChromium, screenshots } from "./testing/browser-harness.js";

const ADMIN_PASSWORD = "dashboard-test-password";
const STEP_MS = 120_000;

let fake: FakeProviders | undefined;
let t: TestServer | undefined;
let browser: Browser | undefined;
let context: BrowserContext;
let page: Page;
let sandboxId = "";
const pageErrors: string[] = [];
const consoleLines: string[] = [];

async function shot(name: string, target: Page = page): Promise<void> {
  await target.screenshot({ path: join(screenshots, `${name}.png`), fullPage: true });
}

/** The terminal's visible lines (xterm's DOM renderer draws one element per row). */
async function terminalLines(): Promise<string[]> {
  return page
    .locator(".xterm-rows > div")
    .evaluateAll((rows) => rows.map((row) => (row.textContent ?? "").replace(/\u00a0/g, " ").trimEnd()));
}

async function waitForTerminalLine(line: string): Promise<void> {
  await expect
    .poll(async () => (await terminalLines()).map((l) => l.trim()), { timeout: 20_000, interval: 200 })
    .toContain(line);
}

async function nav(name: string): Promise<void> {
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name }).click();
}

async function typeInTerminal(text: string): Promise<void> {
  await page.locator(".xterm").click();
  await page.keyboard.type(text);
  await page.keyboard.press("Enter");
}

beforeAll(async () => {
  await ensureDashboardBuilt();
  await mkdir(screenshots, { recursive: true });
  fake = await startFakeProviders();
  // Stand-in login CLIs behave like the real ones without reaching a provider.
  t = await startTestServer(
    {
      adminPassword: ADMIN_PASSWORD,
      webDir: distDir,
      upstreams: { anthropic: fake.url, openai: fake.url, gemini: fake.url },
    },
    { loginFlows: STAND_IN_LOGIN_FLOWS },
  );
  // Demo credentials, as `polydev up --demo` stores them: the fakes accept any key.
  for (const provider of ["anthropic", "openai", "gemini"]) {
    const stored = await t.api.call("PUT", `/v1/credentials/${provider}`, { apiKey: `demo-${provider}-key` });
    if (stored.status !== 200)
      throw new Error(`storing the demo credential failed: ${JSON.stringify(stored.body)}`);
  }
  browser = await launchChromium();
  // A new context is a fresh profile: no cookies, no storage from anything before.
  context = await browser.newContext({ viewport: { width: 1280, height: 820 }, acceptDownloads: true });
  page = await context.newPage();
  page.on("pageerror", (error) => pageErrors.push(error.message));
  page.on("console", (message) => consoleLines.push(`${message.type()}: ${message.text()}`));
}, STEP_MS);

// A failed step leaves what the page looked like and what it logged, for whoever reads the failure.
afterEach(async (context) => {
  if (context.task.result?.state !== "fail" || !browser) return;
  const name = context.task.name.replace(/[^a-z0-9]+/gi, "-").slice(0, 60);
  await page
    .screenshot({ path: join(screenshots, `failed-${name}.png`), fullPage: true })
    .catch(() => undefined);
  console.error(`page ${page.url()}; recent console lines:\n${consoleLines.slice(-20).join("\n")}`);
});

afterAll(async () => {
  await browser?.close();
  await t?.close();
  await fake?.close();
});

describe("the dashboard in Chromium", () => {
  it("serves the built dashboard, with index.html for app routes", async () => {
    const server = t as TestServer;
    const root = await fetch(`${server.url}/`, { headers: { accept: "text/html" } });
    expect(root.status).toBe(200);
    expect(await root.text()).toContain('<div id="root">');
    const deep = await fetch(`${server.url}/sandboxes/sbx_whatever`, { headers: { accept: "text/html" } });
    expect(deep.status).toBe(200);
    expect(deep.headers.get("content-type")).toContain("text/html");
  });

  it(
    "signs in with a name and password",
    async () => {
      const server = t as TestServer;
      await page.goto(`${server.url}/`);
      await page.getByRole("heading", { name: "Sign in" }).waitFor();
      await shot("sign-in");
      await page.getByLabel("Name", { exact: true }).fill("admin");
      await page.getByLabel("Password").fill("not-the-password");
      await page.getByRole("button", { name: "Sign in" }).click();
      await expect.poll(() => page.getByRole("alert").textContent()).toContain("Check the name and password");
      await page.getByLabel("Password").fill(ADMIN_PASSWORD);
      await page.getByRole("button", { name: "Sign in" }).click();
      await page.getByRole("heading", { name: "Sandboxes", level: 1 }).waitFor();
      const cookies = await context.cookies();
      const session = cookies.find((c) => c.name === "polydev_session");
      expect(session?.httpOnly).toBe(true);
      expect(await page.evaluate(() => document.cookie)).not.toContain("polydev_session");
    },
    STEP_MS,
  );

  it(
    "creates a sandbox with limits and opens its terminal",
    async () => {
      await page.getByLabel("Name (optional)").fill("dash-box");
      await page.getByLabel("Memory (MiB)").fill("384");
      await page.getByLabel("Processes").fill("200");
      await page.getByRole("button", { name: "Create sandbox" }).click();
      await page.waitForURL(/\/sandboxes\/[^/]+$/, { timeout: 60_000 });
      sandboxId = decodeURIComponent(new URL(page.url()).pathname.split("/").pop() ?? "");
      expect(sandboxId).not.toBe("");
      const created = await (t as TestServer).api.call<{ memoryMb: number; pidsMax: number; state: string }>(
        "GET",
        `/v1/sandboxes/${sandboxId}`,
      );
      expect(created.body).toMatchObject({ name: "dash-box", memoryMb: 384, pidsMax: 200, state: "running" });
      // The page is titled by the name; Stop and Fork are offered only where the driver can.
      await page.getByRole("heading", { name: "dash-box", level: 1 }).waitFor();
      // The driver that made it is named (a server may run several).
      await page.getByText("namespace driver").waitFor();
      const { features } = await (t as TestServer).server.driver.probe();
      await expect
        .poll(() => page.getByRole("button", { name: "Stop", exact: true }).count())
        .toBe(features.includes("durable") ? 1 : 0);
      await expect
        .poll(() => page.getByRole("button", { name: "Fork", exact: true }).count())
        .toBe(features.includes("fork") ? 1 : 0);
      await page.getByRole("status").filter({ hasText: "Connected" }).waitFor({ timeout: 30_000 });
      await typeInTerminal("echo hello");
      await waitForTerminalLine("hello");
    },
    STEP_MS,
  );

  it(
    "reattaches to the same shell after a reload",
    async () => {
      await typeInTerminal("POLYDEV_MARK=kept-across-reload");
      await page.reload();
      await page
        .getByRole("status")
        .filter({ hasText: "Reattached to your shell" })
        .waitFor({ timeout: 30_000 });
      await typeInTerminal('echo "mark=$POLYDEV_MARK"');
      await waitForTerminalLine("mark=kept-across-reload");
      await expect.poll(() => page.getByTestId("live-stats").textContent()).toMatch(/CPU\s*[\d.]+%/);
      await shot("sandbox-terminal");
    },
    STEP_MS,
  );

  it(
    "uploads a file with progress and downloads the same bytes",
    async () => {
      await page.getByRole("tab", { name: "Files" }).click();
      await page.getByRole("table", { name: "Files" }).waitFor();
      const bytes = randomBytes(256 * 1024);
      await page.getByTestId("upload-input").setInputFiles({
        name: "payload.bin",
        mimeType: "application/octet-stream",
        buffer: bytes,
      });
      const row = page.locator('tr[data-file="payload.bin"]');
      await row.waitFor({ timeout: 30_000 });
      await expect.poll(() => row.textContent()).toContain("256 KiB");
      const [download] = await Promise.all([
        page.waitForEvent("download"),
        row.getByRole("link", { name: "Download" }).click(),
      ]);
      expect(download.suggestedFilename()).toBe("payload.bin");
      const path = await download.path();
      const downloaded = await readFile(path);
      expect(downloaded.equals(bytes)).toBe(true);
      // Random bytes are no text: the viewer says so instead of drawing them.
      await row.getByRole("button", { name: "payload.bin" }).click();
      await page.getByTestId("binary-file").waitFor();
      expect(await page.locator(".viewer-text").count()).toBe(0);
      await page
        .getByRole("region", { name: "Contents of payload.bin" })
        .getByRole("button", { name: "Close" })
        .click();

      await page.getByLabel("New folder name").fill("notes");
      await page.getByRole("button", { name: "New folder" }).click();
      await page.locator('tr[data-file="notes"]').waitFor();

      await page.getByTestId("upload-input").setInputFiles({
        name: "readme.txt",
        mimeType: "text/plain",
        buffer: Buffer.from("plain words to read\n"),
      });
      await page.locator('tr[data-file="readme.txt"]').getByRole("button", { name: "readme.txt" }).click();
      await expect.poll(() => page.locator(".viewer-text").textContent()).toBe("plain words to read\n");
      await shot("sandbox-files");

      await page.locator('tr[data-file="notes"]').getByRole("button", { name: "Delete" }).click();
      await page
        .getByRole("dialog", { name: "Delete notes?" })
        .getByRole("button", { name: "Delete" })
        .click();
      await page.locator('tr[data-file="notes"]').waitFor({ state: "detached" });

      // Hibernate freezes the sandbox and resume thaws it; the badge follows the server's state.
      const badge = page.locator(".head-side [data-state]");
      await page.getByRole("button", { name: "Hibernate" }).click();
      await expect.poll(() => badge.getAttribute("data-state")).toBe("hibernated");
      await page.getByRole("button", { name: "Resume" }).click();
      await expect.poll(() => badge.getAttribute("data-state")).toBe("running");

      await page.getByRole("tab", { name: "Logs" }).click();
      const lifecycle = page.getByRole("table", { name: "Lifecycle log" });
      await lifecycle.waitFor();
      // What happened to it, oldest first.
      await expect
        .poll(async () => (await lifecycle.locator("td.wrap").allTextContents()).map((m) => m.split(":")[0]))
        .toEqual([expect.stringMatching(/^created from /), "hibernated", "resumed"]);
      await shot("sandbox-logs");
    },
    STEP_MS,
  );

  it(
    "lists the sandbox with live CPU and memory",
    async () => {
      await nav("Sandboxes");
      const row = page.locator(`tr[data-sandbox="${sandboxId}"]`);
      await row.waitFor();
      await expect.poll(() => row.textContent(), { timeout: 20_000 }).toMatch(/CPU\s*[\d.]+%/);
      expect(await row.textContent()).toContain("384 MiB");
      await shot("sandboxes");
      await page.setViewportSize({ width: 390, height: 844 });
      await shot("sandboxes-phone");
      await page.setViewportSize({ width: 1280, height: 820 });
    },
    STEP_MS,
  );

  it(
    "creates an allow-list sandbox, edits its policy, and shows refused connections live",
    async () => {
      const server = t as TestServer;
      await nav("Sandboxes");
      await page.getByLabel("Memory (MiB)").fill("256");
      await page.getByLabel("Network").selectOption("allowlist");
      await page.getByLabel("Allowed destinations").fill("registry.example.com\n*.git.example.com");
      await page.getByRole("checkbox", { name: "github" }).check();
      await shot("sandbox-create-allowlist");
      await page.getByRole("button", { name: "Create sandbox" }).click();
      await page.waitForURL(/\/sandboxes\/[^/]+$/, { timeout: 60_000 });
      const id = decodeURIComponent(new URL(page.url()).pathname.split("/").pop() ?? "");
      const created = await server.api.call("GET", `/v1/sandboxes/${id}`);
      expect(created.body).toMatchObject({
        network: "allowlist",
        egressPolicy: { allow: ["registry.example.com", "*.git.example.com"], deny: [], presets: ["github"] },
      });

      await page.getByRole("tab", { name: "Network" }).click();
      const policy = page.getByRole("form", { name: "Egress policy" });
      await expect
        .poll(() => policy.getByLabel("Allowed destinations").inputValue())
        .toBe("registry.example.com\n*.git.example.com");
      await policy.getByLabel("Denied destinations").fill("uploads.git.example.com");
      await policy.getByRole("checkbox", { name: "github" }).uncheck();
      await policy.getByRole("checkbox", { name: "package-registries" }).check();
      await policy.getByRole("button", { name: "Save policy" }).click();
      await page.getByRole("status").filter({ hasText: "Saved" }).waitFor();
      const saved = await server.api.call("GET", `/v1/sandboxes/${id}/network`);
      expect(saved.body).toMatchObject({
        allow: ["registry.example.com", "*.git.example.com"],
        deny: ["uploads.git.example.com"],
        presets: ["package-registries"],
      });
      await expect
        .poll(() => page.getByTestId("effective-policy").textContent())
        .toContain("registry.npmjs.org");
      // What is shown after a reload is what the server kept.
      await page.reload();
      await page.getByRole("tab", { name: "Network" }).click();
      await expect
        .poll(() => page.getByLabel("Denied destinations").inputValue())
        .toBe("uploads.git.example.com");

      // A lookup of a name that is not listed, from inside the sandbox, appears as a denied row
      // while the page is open. The stream only carries what happens after it subscribed, so ask
      // again until the row is there.
      await page.getByTestId("audit-stream").filter({ hasText: "Live" }).waitFor({ timeout: 30_000 });
      const row = page.locator('tr[data-decision="denied"][data-host="refused.invalid"]').first();
      for (let attempt = 0; attempt < 20 && (await row.count()) === 0; attempt++) {
        await server.api.exec(id, "getent hosts refused.invalid || true", { timeoutMs: 20_000 });
        await row.waitFor({ timeout: 1000 }).catch(() => undefined);
      }
      await row.waitFor();
      expect(await row.textContent()).toMatch(/denied[a-z_]+/);
      await shot("sandbox-network");
      await server.api.call("DELETE", `/v1/sandboxes/${id}`);
    },
    STEP_MS,
  );

  it(
    "runs the built-in agent and streams its text and tool calls",
    async () => {
      const server = t as TestServer;
      // The fake provider answers with a tool call, then text streamed a word at a time.
      fake?.setScript([
        {
          text: "Writing the greeting now.",
          toolCall: {
            tool: "write_file",
            arguments: { path: "greeting.txt", content: "hi from the dashboard" },
          },
        },
        { text: "All done: greeting.txt says hi from the dashboard." },
      ]);
      await nav("Runs");
      await page.getByLabel("Prompt").fill("write greeting.txt");
      await page.getByLabel("Sandbox").selectOption(sandboxId);
      await page.getByRole("button", { name: "Start run" }).click();
      await page.waitForURL(/\/runs\/[^/]+$/);
      const output = page.getByTestId("run-output");
      await expect
        .poll(() => output.textContent(), { timeout: 60_000 })
        .toContain("Writing the greeting now.");
      await expect.poll(() => output.textContent(), { timeout: 60_000 }).toContain("finished: completed");
      expect(await output.textContent()).toContain("All done: greeting.txt says hi from the dashboard.");
      const tool = output.locator("details.tool").first();
      await expect.poll(() => tool.locator("summary").textContent()).toContain("write_file");
      await tool.locator("summary").click();
      await expect.poll(() => tool.textContent()).toContain("hi from the dashboard");
      await shot("run");
      fake?.setScript(undefined);
      const file = await server.api.call("GET", `/v1/sandboxes/${sandboxId}/files/content?path=greeting.txt`);
      expect(String(file.body)).toBe("hi from the dashboard");

      // Replaying a finished run streams the same events again from the first one.
      await page.getByRole("button", { name: "Replay from the start" }).click();
      await expect.poll(() => output.textContent(), { timeout: 30_000 }).toContain("finished: completed");
      expect(await output.locator("details.tool").count()).toBe(1);
      await nav("Runs");
      await page.getByRole("heading", { name: "History" }).waitFor();
      await expect.poll(() => page.locator(".history").textContent()).toContain("write greeting.txt");
      await shot("runs");
    },
    STEP_MS,
  );

  it(
    "cancels a run that is still going",
    async () => {
      // Slow enough to be cancelled mid-answer: one word every 300 ms.
      fake?.setScript([{ text: Array.from({ length: 60 }, (_, i) => `word${i}`).join(" "), delayMs: 300 }]);
      await nav("Runs");
      await page.getByLabel("Prompt").fill("talk for a while");
      await page.getByLabel("Sandbox").selectOption(sandboxId);
      await page.getByRole("button", { name: "Start run" }).click();
      await page.waitForURL(/\/runs\/[^/]+$/);
      const output = page.getByTestId("run-output");
      await expect.poll(() => output.textContent(), { timeout: 60_000 }).toContain("word1");
      await page.getByRole("button", { name: "Cancel" }).click();
      await expect
        .poll(() => page.locator(".run-column [data-state]").first().getAttribute("data-state"), {
          timeout: 30_000,
        })
        .toBe("cancelled");
      expect(await output.textContent()).not.toContain("word59");
      fake?.setScript(undefined);
    },
    STEP_MS,
  );

  it.skipIf(!existsSync("/usr/local/bin/claude"))(
    "shows a group of agents side by side (skipped without the agent CLIs that scripts/ensure.sh installs as root)",
    async () => {
      await nav("Runs");
      await page.getByLabel("Prompt").fill("say hello");
      await page.getByRole("checkbox", { name: "Claude Code" }).check();
      await page.getByLabel("Sandbox").selectOption(sandboxId);
      await page.getByRole("button", { name: "Start 2 runs" }).click();
      await page.waitForURL(/\/runs\/[^/]+,[^/]+$/);
      const columns = page.locator(".run-column");
      expect(await columns.count()).toBe(2);
      for (const column of await columns.all()) {
        await expect
          .poll(() => column.getByTestId("run-output").textContent(), { timeout: 90_000 })
          .toContain("Hello from the fake anthropic provider.");
        await expect
          .poll(() => column.getByTestId("run-output").textContent(), { timeout: 90_000 })
          .toContain("finished: completed");
      }
      await shot("run-group");
    },
    STEP_MS,
  );

  it(
    "shows credentials and the admin's figures",
    async () => {
      await nav("Credentials");
      await page.locator('[data-provider="anthropic"]').getByText("Updated").waitFor();
      const text = await page.locator("main").textContent();
      expect(text).not.toContain("demo-anthropic-key");
      const openai = page.locator('[data-provider="openai"]');
      await openai.getByRole("button", { name: "Check validity" }).click();
      await expect
        .poll(() => openai.locator(".card-head").textContent(), { timeout: 20_000 })
        .toMatch(/valid|rejected/);

      // A subscription login: the page shows the provider's URL, takes the code, follows the state.
      await page.getByRole("button", { name: "Sign in with Claude Code" }).click();
      const login = page.locator(".login-panel");
      // The sign-in URL is hundreds of characters: a button to open it and one to copy it.
      const open = login.getByRole("link", { name: "Open sign-in page" });
      await open.waitFor({ timeout: 60_000 });
      expect(await open.getAttribute("href")).toMatch(/^https:\/\/claude\.ai\/oauth\/authorize\?/);
      await expect.poll(() => login.getAttribute("data-login-state")).toBe("awaiting_user");
      await context.grantPermissions(["clipboard-read", "clipboard-write"]);
      await login.getByRole("button", { name: "Copy link" }).click();
      await login.getByRole("status").filter({ hasText: "Copied." }).waitFor();
      expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(await open.getAttribute("href"));
      await shot("credentials-login");
      // On a phone the panel fits the screen: nothing scrolls sideways.
      await page.setViewportSize({ width: 390, height: 844 });
      expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
      await shot("credentials-login-phone");
      await page.setViewportSize({ width: 1280, height: 820 });
      await login.getByLabel("Paste the code the provider showed you").fill(GOOD_CODE);
      await login.getByRole("button", { name: "Finish login" }).click();
      await expect.poll(() => login.getAttribute("data-login-state"), { timeout: 30_000 }).toBe("completed");
      await expect
        .poll(() => page.locator('[data-provider="anthropic"]').textContent())
        .toContain("subscription");
      await shot("credentials");
      // A wrong code: the provider's refusal, at once and readable.
      await login.getByRole("button", { name: "Dismiss" }).click();
      await page.getByRole("button", { name: "Sign in with Claude Code" }).click();
      await expect
        .poll(() => login.getAttribute("data-login-state"), { timeout: 60_000 })
        .toBe("awaiting_user");
      await login.getByLabel("Paste the code the provider showed you").fill("a-wrong-code");
      await login.getByRole("button", { name: "Finish login" }).click();
      await expect.poll(() => login.getAttribute("data-login-state"), { timeout: 30_000 }).toBe("failed");
      expect(await login.textContent()).toContain("claude refused the code: Invalid authorization code.");
      await login.getByRole("button", { name: "Dismiss" }).click();
      await nav("Admin");
      await page.getByRole("img", { name: "Sandboxes by state" }).waitFor();
      await page.getByRole("cell", { name: sandboxId }).waitFor();
      // The background jobs card is there (its rows appear once a job has run).
      await page.getByRole("heading", { name: "Background jobs" }).waitFor();
      await shot("admin");

      // A new user's API key is shown once, and the password set here signs them in.
      await page.getByLabel("Name", { exact: true }).fill("bob");
      await page.getByLabel("Password (optional)").fill("bobs-password-1");
      await page.getByRole("button", { name: "Create user" }).click();
      await expect.poll(() => page.getByTestId("new-api-key").textContent()).toMatch(/^pdk_/);
      await page.getByRole("cell", { name: "bob", exact: true }).waitFor();

      // A plan, then bob put on it: the table counts him, and the server enforces it.
      const newPlan = page.getByRole("form", { name: "New plan" });
      await newPlan.getByLabel("Plan name").fill("team");
      await newPlan.getByLabel("Running sandboxes").fill("2");
      await newPlan.getByLabel("Memory (MiB)").fill("4096");
      await newPlan.getByRole("button", { name: "Create plan" }).click();
      const plansTable = page.getByRole("table", { name: "Plans" });
      await plansTable.getByRole("cell", { name: "team" }).waitFor();
      const assignForm = page.getByRole("form", { name: "Assign a plan" });
      await assignForm.getByLabel("User to assign").selectOption({ label: "bob" });
      await assignForm.getByLabel("Plan to assign").selectOption("team");
      await assignForm.getByRole("button", { name: "Assign plan" }).click();
      await assignForm.getByRole("status").filter({ hasText: "Now on team" }).waitFor();
      await expect.poll(() => plansTable.getByRole("row").nth(1).textContent()).toMatch(/^team.*1.*2.*4,096/);
      await shot("admin-plans");

      // The admin opens bob's sandbox from the list, sees whose it is and its log, and destroys it.
      const server = t as TestServer;
      const bobKey = (await page.getByTestId("new-api-key").textContent()) ?? "";
      const bobBox = await server.api.withKey(bobKey).createSandbox({ memoryMb: 256 });
      await page.getByRole("link", { name: bobBox }).click({ timeout: 30_000 });
      await page.waitForURL(new RegExp(`/admin/sandboxes/${bobBox}$`));
      await expect.poll(() => page.getByTestId("owner").textContent()).toBe("bob");
      await expect
        .poll(() => page.getByRole("table", { name: "Lifecycle log" }).textContent())
        .toContain("created from");
      await shot("admin-sandbox");
      await page.getByRole("button", { name: "Destroy" }).click();
      await page
        .getByRole("dialog", { name: "Destroy bob's sandbox?" })
        .getByRole("button", { name: "Destroy it" })
        .click();
      await expect
        .poll(() => page.locator(".page-head [data-state]").getAttribute("data-state"), { timeout: 30_000 })
        .toBe("destroyed");
      const seenByBob = await server.api
        .withKey(bobKey)
        .call<{ state: string }>("GET", `/v1/sandboxes/${bobBox}`);
      expect(seenByBob.body.state).toBe("destroyed");
    },
    STEP_MS,
  );

  it(
    "links to the API reference, served by the server over its OpenAPI document",
    async () => {
      await page.getByRole("link", { name: "API reference" }).click();
      await page.waitForURL(/\/api-reference$/);
      await expect
        .poll(() => page.locator(".swagger-ui .title").first().textContent(), { timeout: 30_000 })
        .toContain("Polydev API");
      await page.locator(".opblock-summary-path", { hasText: "/v1/sandboxes/{id}/exec" }).first().waitFor();
      await shot("api-reference");
      await page.goBack();
      await page.getByRole("navigation", { name: "Main" }).waitFor();
    },
    STEP_MS,
  );

  it(
    "destroys a sandbox only after confirming, by keyboard",
    async () => {
      const server = t as TestServer;
      const spare = await server.api.createSandbox();
      await nav("Sandboxes");
      const row = page.locator(`tr[data-sandbox="${spare}"]`);
      await row.getByRole("button", { name: "Destroy" }).focus();
      await page.keyboard.press("Enter");
      const dialog = page.getByRole("dialog", { name: `Destroy ${spare}?` });
      await dialog.waitFor();
      expect(await dialog.evaluate((d) => d.contains(document.activeElement))).toBe(true);
      await page.keyboard.press("Escape");
      await dialog.waitFor({ state: "hidden" });
      expect((await server.api.call<{ state: string }>("GET", `/v1/sandboxes/${spare}`)).body.state).toBe(
        "running",
      );
      await row.getByRole("button", { name: "Destroy" }).click();
      await dialog.getByRole("button", { name: "Destroy sandbox" }).click();
      await row.waitFor({ state: "detached", timeout: 30_000 });
      expect((await server.api.call<{ state: string }>("GET", `/v1/sandboxes/${spare}`)).body.state).toMatch(
        /destroy/,
      );
    },
    STEP_MS,
  );

  it(
    "signs in with an API key, and a non-admin sees no admin page",
    async () => {
      const server = t as TestServer;
      await page.getByRole("button", { name: "Sign out" }).click();
      await page.getByRole("heading", { name: "Sign in" }).waitFor();
      await page.getByRole("button", { name: "API key" }).click();
      await page.getByLabel("API key").fill(server.adminKey);
      await page.getByRole("button", { name: "Sign in" }).click();
      await page.getByRole("heading", { name: "Sandboxes", level: 1 }).waitFor();
      await page.getByRole("button", { name: "Sign out" }).click();
      await page.getByRole("heading", { name: "Sign in" }).waitFor();

      await page.getByRole("button", { name: "Name and password" }).click();
      await page.getByLabel("Name", { exact: true }).fill("bob");
      await page.getByLabel("Password").fill("bobs-password-1");
      await page.getByRole("button", { name: "Sign in" }).click();
      await page.getByRole("heading", { name: "Sandboxes", level: 1 }).waitFor();
      expect(await page.getByRole("navigation", { name: "Main" }).textContent()).not.toContain("Admin");
      await page.goto(`${server.url}/admin`);
      await page.getByRole("heading", { name: "Admins only", level: 1 }).waitFor();
      // bob has stored no credential: a run is refused up front, saying how to add one.
      await nav("Runs");
      await page.getByLabel("Prompt").fill("say hello");
      await page.getByRole("button", { name: "Start run" }).click();
      const refusal = page.getByRole("alert").filter({ hasText: "Could not start the run" });
      await expect
        .poll(() => refusal.textContent())
        .toContain("needs a credential for anthropic, openai or gemini");
      await refusal.getByRole("link", { name: "Add a credential" }).click();
      await page.getByRole("heading", { name: "Credentials", level: 1 }).waitFor();
      // Another user's sandbox is not there for bob, not even by address.
      await page.goto(`${server.url}/sandboxes/${sandboxId}`);
      await expect.poll(() => page.getByRole("alert").textContent()).toContain("No such sandbox");
    },
    STEP_MS,
  );

  it(
    "signs out, after which pages show sign-in",
    async () => {
      const server = t as TestServer;
      await page.getByRole("button", { name: "Sign out" }).click();
      await page.getByRole("heading", { name: "Sign in" }).waitFor();
      await page.goto(`${server.url}/sandboxes/${sandboxId}`);
      await page.getByRole("heading", { name: "Sign in" }).waitFor();
      const status = await page.evaluate(async () => (await fetch("/v1/auth/session")).status);
      expect(status).toBe(401);
      expect(pageErrors).toEqual([]);
    },
    STEP_MS,
  );
});
