/**
 * The real CLIs from npm, inside a real sandbox, up to the sign-in URL: the rest of their flows
 * needs the providers' sites, which these machines cannot reach (the stand-in test covers it).
 */
import { existsSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApiClient, TestServer } from "./testing/harness.js";
import { createUser, startTestServer } from "./testing/harness.js";

const installed = ["claude", "codex", "gemini"].every((cli) => existsSync(`/usr/local/bin/${cli}`));
let t: TestServer;
let alice: ApiClient;

describe.skipIf(!installed)(
  "real CLI logins (skipped when scripts/ensure.sh could not install the CLIs as root)",
  () => {
    beforeAll(async () => {
      t = await startTestServer();
      alice = await createUser(t.api, "alice");
    });
    afterAll(async () => {
      await t?.close();
    });

    it.each([
      ["claude", /^https:\/\/claude\.(ai|com)\/.*oauth\/authorize\?/, "code"],
      ["gemini", /^https:\/\/accounts\.google\.com\//, "code"],
      [
        "codex",
        /^https:\/\/auth\.openai\.com\/oauth\/authorize\?.*redirect_uri=http%3A%2F%2F(localhost|127\.0\.0\.1)%3A1455/,
        "callback",
      ],
    ])(
      "%s prints its sign-in URL inside the sandbox and waits for the user",
      async (provider, url, finish) => {
        const sandbox = await alice.createSandbox({ network: "egress" });
        const started = await alice.call<{ id: string; state: string; url: string; finish: string }>(
          "POST",
          "/v1/logins",
          {
            provider,
            sandboxId: sandbox,
          },
        );
        expect(started.status).toBe(201);
        expect(started.body.state).toBe("awaiting_user");
        expect(started.body.url).toMatch(url);
        expect(started.body.finish).toBe(finish);
        const cancelled = await alice.call<{ state: string }>("DELETE", `/v1/logins/${started.body.id}`);
        expect(cancelled.body.state).toBe("cancelled");
      },
    );
  },
);
