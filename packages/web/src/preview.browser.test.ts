/**
 * Preview URLs in a real headless Chromium against a real server and sandboxes with no network:
 * the dashboard's "Open preview" opens a sandbox's page on the separate preview origin, and a
 * hostile page served from a sandbox tries what it should not: reading the dashboard's API and
 * cookie, and another preview. Both origin modes: path mode (one origin, CSP sandbox, the default)
 * and host mode (`<port>-<sandbox>.<domain>`, here under `.localhost`, which Chromium resolves to
 * loopback). Screenshots go to test-artifacts/screenshots/.
 */
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApiClient } from "../../server/src/testing/harness.js";
import { startTestServer } from "../../server/src/testing/harness.js";
import { startPreviewApp } from "../../server/src/testing/preview-app.js";
import { distDir, ensureDashboardBuilt, launchChromium, screenshots } from "./testing/browser-harness.js";

const ADMIN_PASSWORD = "preview-browser-test-password";
const STEP_MS = 120_000;

/**
 * What a hostile page in a sandbox tries, reported in its title as JSON: the dashboard's API
 * with the browser's credentials, the origin's cookies, another preview, its own data and
 * WebSocket (which must work).
 */
function probePage(dashboardUrl: string, otherPreviewUrl: string): string {
  return `<!doctype html><title>probing</title><h1 id="h">preview page</h1><script>
const report = {};
const settle = (name, promise) => promise.then((v) => { report[name] = v; }, (e) => { report[name] = "blocked: " + e.name; });
try { report.cookie = document.cookie; } catch (e) { report.cookie = "blocked: " + e.name; }
Promise.all([
  settle("dashboardApi", fetch(${JSON.stringify(`${dashboardUrl}/v1/sandboxes`)}, { credentials: "include" }).then((r) => "read " + r.status)),
  settle("dashboardSession", fetch(${JSON.stringify(`${dashboardUrl}/v1/auth/session`)}, { credentials: "include" }).then((r) => r.text())),
  settle("otherPreview", fetch(${JSON.stringify(otherPreviewUrl)}, { credentials: "include" }).then((r) => r.text())),
  settle("ownData", fetch("data.json").then((r) => r.json()).then((j) => j.secret)),
  settle("ownSocket", new Promise((resolve, reject) => {
    const ws = new WebSocket(new URL("ws", location.href).toString().replace(/^http/, "ws"));
    ws.onopen = () => ws.send("from the page");
    ws.onmessage = (m) => { resolve(String(m.data)); ws.close(); };
    ws.onerror = () => reject(new Error("socket failed"));
  })),
]).then(() => { document.title = JSON.stringify(report); });
</script>`;
}

interface ProbeReport {
  cookie: string;
  dashboardApi: string;
  dashboardSession: string;
  otherPreview: string;
  ownData: string;
  ownSocket: string;
}

async function probe(page: Page): Promise<ProbeReport> {
  await page.waitForFunction(() => document.title.startsWith("{"), undefined, { timeout: 30_000 });
  return JSON.parse(await page.title()) as ProbeReport;
}

let browser: Browser | undefined;

beforeAll(async () => {
  await ensureDashboardBuilt();
  await mkdir(screenshots, { recursive: true });
  browser = await launchChromium();
}, STEP_MS);
afterAll(async () => {
  await browser?.close();
});

/** A server, a signed-in dashboard context, and two sandboxes serving the probe page. */
async function setup(preview: { domain?: string }) {
  const t = await startTestServer({ adminPassword: ADMIN_PASSWORD, webDir: distDir, preview });
  const api: ApiClient = t.api;
  const [a, b] = await Promise.all([
    api.createSandbox({ network: "none" }),
    api.createSandbox({ network: "none" }),
  ]);
  if (!browser) throw new Error("no browser");
  const context: BrowserContext = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const signIn = await context.request.post(`${t.url}/v1/auth/session`, {
    data: { name: "admin", password: ADMIN_PASSWORD },
  });
  expect(signIn.status()).toBe(200);
  return { t, api, a, b, context };
}

async function previewLink(api: ApiClient, id: string, port: number): Promise<string> {
  const made = await api.call<{ url: string }>("POST", `/v1/sandboxes/${id}/ports/${port}/preview-link`, {});
  expect(made.status).toBe(201);
  return made.body.url;
}

describe("preview URLs in Chromium", () => {
  it(
    "path mode: Open preview shows the page on the preview origin; a hostile page reads neither the dashboard nor another preview",
    async () => {
      const { t, api, a, b, context } = await setup({});
      try {
        // b's preview is opened by the user first: its page lives in the same browser.
        await startPreviewApp(api, b, 8081);
        const page = await context.newPage();
        await page.goto(await previewLink(api, b, 8081));
        const otherPreview = new URL("data.json", page.url()).toString();
        expect(await page.textContent("body")).toContain("preview page on port 8081");
        await startPreviewApp(api, a, 8080, probePage(t.url, otherPreview));

        // The dashboard: the sandbox's Ports tab lists the app; Open preview opens it in a new tab.
        await page.goto(`${t.url}/sandboxes/${a}`);
        await page.getByRole("tab", { name: "Ports" }).click();
        const row = page.getByRole("row", { name: /8080/ });
        await row.waitFor();
        expect(await row.textContent()).toContain("python3");
        await page.screenshot({ path: join(screenshots, "preview-ports-tab.png") });
        const [opened] = await Promise.all([
          context.waitForEvent("page"),
          row.getByRole("button", { name: "Open preview" }).click(),
        ]);
        const report = await probe(opened);
        await opened.screenshot({ path: join(screenshots, "preview-path-mode.png") });
        const previewOrigin = new URL(t.server.previewUrl ?? "").origin;
        expect(new URL(opened.url()).origin).toBe(previewOrigin);
        expect(previewOrigin).not.toBe(new URL(t.url).origin);
        // An opaque origin: no cookie jar at all, nothing of the dashboard's readable.
        expect(report.cookie).toBe("blocked: SecurityError");
        expect(report.dashboardApi).toBe("blocked: TypeError");
        expect(report.dashboardSession).toBe("blocked: TypeError");
        // Even knowing b's address, the page cannot read it: it is another (opaque) origin's and
        // b's app grants no one.
        expect(report.otherPreview).toBe("blocked: TypeError");
        // Its own app works: subresources, fetches and its WebSocket.
        expect(report.ownData).toBe("preview-data-8080");
        expect(report.ownSocket).toBe("echo:from the page");
        await opened.close();
        await page.close();
      } finally {
        await context.close();
        await t.close();
      }
    },
    STEP_MS,
  );

  it(
    "host mode: each port is its own origin with a host-only cookie; a hostile page reads neither the dashboard nor another preview",
    async () => {
      const { t, api, a, b, context } = await setup({ domain: "preview.localhost" });
      try {
        await startPreviewApp(api, b, 8081);
        const page = await context.newPage();
        const bLink = await previewLink(api, b, 8081);
        expect(new URL(bLink).hostname).toMatch(/^8081-sbx-[0-9a-f]+\.preview\.localhost$/);
        await page.goto(bLink);
        expect(new URL(page.url()).pathname).toBe("/");
        expect(await page.textContent("body")).toContain("preview page on port 8081");
        const bCookie = (await context.cookies(page.url())).find((c) => c.name === "polydev_preview");
        expect(bCookie).toMatchObject({ httpOnly: true, sameSite: "Lax", domain: new URL(bLink).hostname });
        const otherPreview = new URL("/data.json", page.url()).toString();

        await startPreviewApp(api, a, 8080, probePage(t.url, otherPreview));
        const aPage = await context.newPage();
        await aPage.goto(await previewLink(api, a, 8080));
        const report = await probe(aPage);
        await aPage.screenshot({ path: join(screenshots, "preview-host-mode.png") });
        // Its own origin: its cookie is HttpOnly, the dashboard's is another host's.
        expect(report.cookie).toBe("");
        expect(report.dashboardApi).toBe("blocked: TypeError");
        expect(report.dashboardSession).toBe("blocked: TypeError");
        expect(report.otherPreview).toBe("blocked: TypeError");
        expect(report.ownData).toBe("preview-data-8080");
        expect(report.ownSocket).toBe("echo:from the page");
        // Without the link's cookie (a fresh browser), the preview is refused.
        const stranger = await browser?.newContext();
        const strangerPage = await stranger?.newPage();
        const refused = await strangerPage?.goto(new URL("/", aPage.url()).toString());
        expect(refused?.status()).toBe(401);
        await stranger?.close();
      } finally {
        await context.close();
        await t.close();
      }
    },
    STEP_MS,
  );
});
