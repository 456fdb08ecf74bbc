/**
 * The API keys page and the admin audit page in a real headless Chromium against a real server:
 * create a key (its secret shown once, working against the API), see it listed without its
 * secret, revoke it through the confirmation dialog (the key then answers 401), and find both
 * actions in the audit log. Screenshots go to test-artifacts/screenshots/.
 */
import { mkdir } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import type { Browser, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { TestServer } from "../../server/src/testing/harness.js";
import { startTestServer } from "../../server/src/testing/harness.js";
import { distDir, ensureDashboardBuilt, launchChromium, screenshots } from "./testing/browser-harness.js";

const ADMIN_PASSWORD = "keys-page-test-password";
const STEP_MS = 120_000;

/** A loopback identity provider: its JWKS and the private key that signs its tokens. */
let idp: Server | undefined;
let idpUrl = "";
let idpKey: Awaited<ReturnType<typeof generateKeyPair>>;
let t: TestServer | undefined;
let browser: Browser | undefined;
let page: Page;
const consoleLines: string[] = [];

function server(): TestServer {
  if (!t) throw new Error("the test server did not start");
  return t;
}

async function nav(name: string): Promise<void> {
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name }).click();
}

beforeAll(async () => {
  await ensureDashboardBuilt();
  await mkdir(screenshots, { recursive: true });
  idpKey = await generateKeyPair("ES256", { extractable: true });
  const jwk = { ...(await exportJWK(idpKey.publicKey)), kid: "idp-1", alg: "ES256", use: "sig" };
  idp = createServer((_, response) => {
    response.writeHead(200, { "content-type": "application/json" });
    response.end(JSON.stringify({ keys: [jwk] }));
  });
  const listening = idp;
  await new Promise<void>((resolve) => listening.listen(0, "127.0.0.1", resolve));
  idpUrl = `http://127.0.0.1:${(listening.address() as AddressInfo).port}`;
  t = await startTestServer({
    adminPassword: ADMIN_PASSWORD,
    webDir: distDir,
    oidcIssuers: [{ issuer: idpUrl, audience: "polydev-dashboard", jwksUrl: `${idpUrl}/jwks` }],
  });
  browser = await launchChromium();
  page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
  page.on("console", (message) => consoleLines.push(`${message.type()}: ${message.text()}`));
}, STEP_MS);

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
  const server = idp;
  if (server) await new Promise((resolve) => server.close(resolve));
});

describe("API keys, the audit log and token sign-in in the dashboard", () => {
  it(
    "creates a key whose secret is shown once and works, lists it without the secret, and revokes it",
    async () => {
      await page.goto(`${server().url}/`);
      await page.getByLabel("Name", { exact: true }).fill("admin");
      await page.getByLabel("Password").fill(ADMIN_PASSWORD);
      await page.getByRole("button", { name: "Sign in" }).click();
      await nav("API keys");
      await page.getByRole("heading", { name: "API keys", level: 1 }).waitFor();

      await page.getByLabel("Name", { exact: true }).fill("from-the-browser");
      await page.getByLabel("Expires").selectOption({ label: "30 days" });
      await page.getByRole("button", { name: "Create key" }).click();
      const secret = (await page.getByTestId("new-key-secret").textContent())?.trim() ?? "";
      expect(secret).toMatch(/^pdk_/);
      const withIt = server().api.withKey(secret);
      expect((await withIt.call<{ name: string }>("GET", "/v1/me")).body.name).toBe("admin");

      const row = page.getByRole("row").filter({ hasText: "from-the-browser" });
      await row.waitFor();
      expect(await row.textContent()).toContain(secret.slice(0, 10));
      // The table shows only the prefix; the secret is in the one-time notice alone.
      expect(await page.getByRole("table", { name: "API keys" }).textContent()).not.toContain(secret);
      await page.screenshot({ path: join(screenshots, "keys-created.png"), fullPage: true });

      // After a reload the secret is gone for good.
      await page.reload();
      await row.waitFor();
      expect(await page.content()).not.toContain(secret);

      await row.getByRole("button", { name: "Revoke" }).click();
      await page.getByRole("dialog").getByRole("button", { name: "Revoke" }).click();
      await expect.poll(() => row.count(), { timeout: 10_000 }).toBe(0);
      expect((await withIt.call("GET", "/v1/me")).status).toBe(401);
    },
    STEP_MS,
  );

  it(
    "shows the key's creation and revocation in the admin audit log, filterable by action",
    async () => {
      await nav("Audit");
      await page.getByRole("heading", { name: "Audit log", level: 1 }).waitFor();
      const table = page.getByRole("table", { name: "Audit events" });
      await expect.poll(() => table.textContent(), { timeout: 10_000 }).toContain("api_key.revoke");
      expect(await table.textContent()).toContain("api_key.create");
      await page.getByLabel("Action").selectOption("api_key.revoke");
      await expect
        .poll(async () => (await table.textContent()) ?? "", { timeout: 10_000 })
        .not.toContain("api_key.create");
      await page.screenshot({ path: join(screenshots, "audit-log.png"), fullPage: true });
    },
    STEP_MS,
  );

  it(
    "signs in with a pasted identity-provider token as a new user, who sees no admin pages",
    async () => {
      await page.getByRole("button", { name: "Sign out" }).click();
      await page.getByRole("heading", { name: "Sign in" }).waitFor();
      await page.getByRole("button", { name: "Identity token" }).click();
      const idToken = await new SignJWT({ preferred_username: "grace" })
        .setProtectedHeader({ alg: "ES256", kid: "idp-1" })
        .setIssuer(idpUrl)
        .setAudience("polydev-dashboard")
        .setSubject("grace-subject")
        .setExpirationTime("5m")
        .sign(idpKey.privateKey);
      await page.getByLabel("Identity provider token").fill(idToken);
      await page.getByRole("button", { name: "Sign in", exact: true }).click();
      await page.getByTitle("signed in as grace (user)").waitFor();
      const links = await page.getByRole("navigation", { name: "Main" }).getByRole("link").allTextContents();
      expect(links).toContain("API keys");
      expect(links).not.toContain("Audit");
      await page.screenshot({ path: join(screenshots, "signed-in-with-token.png"), fullPage: true });
    },
    STEP_MS,
  );
});
