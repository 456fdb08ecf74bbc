import type { Clock, SandboxDriver, Store } from "@polydev/core";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import type { Logger } from "pino";
import type { PolydevConfig } from "../config.js";
import type { BrowserSessions } from "../services/browser-sessions.js";
import type { CredentialService } from "../services/credential-service.js";
import type { GatewayHub } from "../services/gateway-hub.js";
import type { LoginService } from "../services/login-service.js";
import type { PtySessions } from "../services/pty-sessions.js";
import type { RunService } from "../services/run-service.js";
import type { SandboxService } from "../services/sandbox-service.js";
import type { SignInThrottle } from "../services/sign-in-throttle.js";

/** What routes may use; built once in app.ts. */
export interface ServerContext {
  config: PolydevConfig;
  store: Store;
  driver: SandboxDriver;
  sandboxes: SandboxService;
  ptys: PtySessions;
  credentials: CredentialService;
  gateway: GatewayHub;
  logins: LoginService;
  runs: RunService;
  sessions: BrowserSessions;
  signInThrottle: SignInThrottle;
  clock: Clock;
  log: Logger;
}

export type ZodApp = ReturnType<typeof zodApp>;
export function zodApp(app: FastifyInstance) {
  return app.withTypeProvider<ZodTypeProvider>();
}
