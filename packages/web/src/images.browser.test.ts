/**
 * The images page, the image picker and the snapshot button in a real headless Chromium against a
 * real server with its image store on (the storage pool, polydev/base from the host's test cache,
 * RUN steps in real sandboxes): build from a Dockerfile with its log streaming in (a step's output
 * shows while the step still runs), see a failing step, start a sandbox from the new image with a
 * preset, snapshot it, and be refused (409) when deleting an image a sandbox uses.
 */
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { testBaseRootfs, testImagesUnavailable, testToolbox } from "@polydev/images/testing";
import type { Browser, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { TestServer } from "../../server/src/testing/harness.js";
import { IMAGE_BUILD_TIMEOUT_MS, startTestServer, waitForImage } from "../../server/src/testing/harness.js";
import { distDir, ensureDashboardBuilt, launchChromium, screenshots } from "./testing/browser-harness.js";

const ADMIN_PASSWORD = "images-test-password";
const STEP_MS = 120_000;
// Images need root (idmapped mounts), the cached default image and XFS tools for the storage pool.
const imagesMissing = testImagesUnavailable() ?? (existsSync("/usr/sbin/mkfs.xfs") ? null : "no xfsprogs");
const SKIPPED = imagesMissing === null ? "" : ` (skipped: no image store here: ${imagesMissing})`;

let t: TestServer | undefined;
let browser: Browser | undefined;
let page: Page;
let features: string[] = [];
let sandboxId = "";
const consoleLines: string[] = [];

function server(): TestServer {
  if (!t) throw new Error("the test server did not start");
  return t;
}

async function shot(name: string): Promise<void> {
  await page.screenshot({ path: join(screenshots, `${name}.png`), fullPage: true });
}

async function nav(name: string): Promise<void> {
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name }).click();
}

/** Builds from the form and waits until the streamed log has ended in `state`. */
async function buildFromForm(name: string, dockerfile: string, state: "ready" | "failed"): Promise<void> {
  await page.getByLabel("Image name").fill(name);
  await page.getByLabel(/^Dockerfile/).fill(dockerfile);
  await page.getByRole("button", { name: "Build image" }).click();
  const panel = page.locator(`section[data-image="${name}"]`);
  await panel.locator('[data-state="building"], [data-state="ready"], [data-state="failed"]').waitFor();
  await panel.locator(`[data-state="${state}"]`).waitFor({ timeout: 90_000 });
}

beforeAll(async () => {
  if (imagesMissing !== null) return;
  await ensureDashboardBuilt();
  await mkdir(screenshots, { recursive: true });
  await Promise.all([testBaseRootfs(), testToolbox()]);
  t = await startTestServer({
    adminPassword: ADMIN_PASSWORD,
    webDir: distDir,
    images: { enabled: true },
  });
  await waitForImage(t.api, "polydev/base");
  features = (await t.api.call<{ features: string[] }>("GET", "/healthz")).body.features;
  browser = await launchChromium();
  page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
  page.on("console", (message) => consoleLines.push(`${message.type()}: ${message.text()}`));
}, IMAGE_BUILD_TIMEOUT_MS);

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
});

describe.skipIf(imagesMissing !== null)(`images in the dashboard${SKIPPED}`, () => {
  it(
    "lists the system image and builds one from a Dockerfile, its log streaming in",
    async () => {
      expect(features).toContain("images");
      await page.goto(`${server().url}/`);
      await page.getByLabel("Name", { exact: true }).fill("admin");
      await page.getByLabel("Password").fill(ADMIN_PASSWORD);
      await page.getByRole("button", { name: "Sign in" }).click();
      await nav("Images");
      await page.getByRole("heading", { name: "Images", level: 1 }).waitFor();
      const base = page.locator('tr[data-image="polydev/base"]');
      await expect.poll(() => base.textContent()).toMatch(/polydev\/base\s*system.*ready/);

      await buildFromForm(
        "team/hello:1",
        "FROM polydev/base\nENV GREETING=hi\nRUN echo built > /home/user/greeting && echo step-output-$GREETING\n",
        "ready",
      );
      const log = page.getByRole("log", { name: "Build log" });
      // The RUN step's own output, from a real sandbox, came through the streamed log.
      expect(await log.textContent()).toContain("step-output-hi");
      await page.getByRole("status").filter({ hasText: "team/hello:1 is ready" }).waitFor();
      await expect
        .poll(() => page.locator('tr[data-image="team/hello:1"]').textContent(), { timeout: 10_000 })
        .toMatch(/ready.*dockerfile/);
      await shot("images-built");
    },
    STEP_MS,
  );

  it(
    "shows the failing step of a failed build and its output",
    async () => {
      await buildFromForm("team/broken:1", "FROM polydev/base\nRUN echo about-to-fail && exit 3\n", "failed");
      expect(await page.getByRole("log", { name: "Build log" }).textContent()).toContain("about-to-fail");
      const alert = page.getByRole("alert").filter({ hasText: "The build failed" });
      expect(await alert.textContent()).toMatch(/step 2\/2.*RUN echo about-to-fail && exit 3/);
      await shot("images-failed-build");
    },
    STEP_MS,
  );

  it(
    "shows a running step's output while the build is still going",
    async () => {
      // The step prints, then waits long enough for the page to show that line mid-build. The
      // printed words are computed, so the step's own header in the log does not hold them.
      await page.getByLabel("Image name").fill("team/slow:1");
      await page
        .getByLabel(/^Dockerfile/)
        .fill("FROM polydev/base\nRUN echo first-$((1+1)) && sleep 20 && echo last-$((2+3))\n");
      await page.getByRole("button", { name: "Build image" }).click();
      const panel = page.locator('section[data-image="team/slow:1"]');
      const log = panel.getByRole("log", { name: "Build log" });
      await expect.poll(() => log.textContent(), { timeout: 60_000 }).toContain("first-2");
      expect(await panel.locator('[data-state="building"]').count()).toBe(1);
      expect(await log.textContent()).not.toContain("last-5");
      await panel.locator('[data-state="ready"]').waitFor({ timeout: 90_000 });
      expect(await log.textContent()).toContain("last-5");
    },
    STEP_MS,
  );

  it(
    "creates a sandbox from the picked image with a preset, and shows its image",
    async () => {
      await nav("Sandboxes");
      const picker = page.getByLabel("Image");
      await expect.poll(() => picker.inputValue()).toBe("polydev/base");
      // A failed image is listed but cannot be picked.
      expect(await picker.locator('option[value="team/broken:1"]').isDisabled()).toBe(true);
      await picker.selectOption("team/hello:1");
      await page.getByRole("button", { name: /^Small:/ }).click();
      expect(await page.getByLabel("Disk (MiB)").inputValue()).toBe("2048");
      await page.getByLabel("Name (optional)").fill("from-hello");
      await shot("images-picker");
      await page.getByRole("button", { name: "Create sandbox" }).click();
      await page.waitForURL(/\/sandboxes\/[^/]+$/, { timeout: 60_000 });
      sandboxId = decodeURIComponent(new URL(page.url()).pathname.split("/").pop() ?? "");
      const created = await server().api.call<{ cpu: number; memoryMb: number; diskMb: number }>(
        "GET",
        `/v1/sandboxes/${sandboxId}`,
      );
      expect(created.body).toMatchObject({ cpu: 1, memoryMb: 512, diskMb: 2048 });
      await expect.poll(() => page.getByTestId("sandbox-image").textContent()).toBe("team/hello:1");
      const greeting = await server().api.exec(sandboxId, "cat /home/user/greeting");
      expect(greeting.body.stdout).toBe("built\n");
    },
    STEP_MS,
  );

  it(
    'snapshots the sandbox into a new image (where /healthz lists "snapshot"; elsewhere the button must be absent)',
    async () => {
      const snapshotButton = page.getByRole("button", { name: "Snapshot", exact: true });
      if (!features.includes("snapshot")) {
        // The driver cannot snapshot: the button is not offered (the server reports why in /healthz).
        expect(await snapshotButton.count()).toBe(0);
        return;
      }
      await server().api.exec(sandboxId, "echo from-the-sandbox > /home/user/snapped");
      page.once("dialog", (dialog) => void dialog.accept("team/snap:1"));
      await snapshotButton.click();
      await page.getByRole("status").filter({ hasText: "Saved as image team/snap:1" }).waitFor();
      await nav("Images");
      await expect
        .poll(() => page.locator('tr[data-image="team/snap:1"]').textContent(), { timeout: 10_000 })
        .toMatch(/ready.*snapshot/);
      const fromSnapshot = await server().api.call<{ id: string }>("POST", "/v1/sandboxes", {
        image: "team/snap:1",
      });
      expect(fromSnapshot.status).toBe(201);
      expect((await server().api.exec(fromSnapshot.body.id, "cat /home/user/snapped")).body.stdout).toBe(
        "from-the-sandbox\n",
      );
      await server().api.call("DELETE", `/v1/sandboxes/${fromSnapshot.body.id}`);
    },
    STEP_MS,
  );

  it(
    "refuses to delete an image a sandbox uses (409 shown), and deletes an unused one",
    async () => {
      if (!page.url().endsWith("/images")) await nav("Images");
      const inUse = page.locator('tr[data-image="team/hello:1"]');
      await inUse.getByRole("button", { name: "Delete" }).click();
      await page.getByRole("dialog").getByRole("button", { name: "Delete image" }).click();
      const refusal = page.getByRole("alert").filter({ hasText: "Could not delete team/hello:1" });
      await refusal.waitFor();
      expect(await refusal.textContent()).toMatch(
        /used by 1 sandbox.*Destroy the sandboxes made from this image/,
      );
      await shot("images-in-use");
      expect(await inUse.count()).toBe(1);

      const broken = page.locator('tr[data-image="team/broken:1"]');
      await broken.getByRole("button", { name: "Delete" }).click();
      await page.getByRole("dialog").getByRole("button", { name: "Delete image" }).click();
      await expect.poll(() => broken.count()).toBe(0);
      // The system image offers no delete at all.
      expect(
        await page.locator('tr[data-image="polydev/base"]').getByRole("button", { name: "Delete" }).count(),
      ).toBe(0);
    },
    STEP_MS,
  );
});
