import type { Bus, Clock, SandboxDriver, Store } from "@polydev/core";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import type { Logger } from "pino";
import type { PolydevConfig } from "../config.js";
import type { AuditLog } from "../services/audit-log.js";
import type { BrowserSessions } from "../services/browser-sessions.js";
import type { CredentialService } from "../services/credential-service.js";
import type { EgressHub } from "../services/egress-hub.js";
import type { EventHub } from "../services/event-hub.js";
import type { GatewayHub } from "../services/gateway-hub.js";
import type { GitAccess } from "../services/git-access.js";
import type { GitCredentials } from "../services/git-credentials.js";
import type { ImageService } from "../services/image-service.js";
import type { KeepService } from "../services/keep-service.js";
import type { LoginService } from "../services/login-service.js";
import type { McpServerService } from "../services/mcp-servers.js";
import type { Metrics } from "../services/metrics.js";
import type { NetworkPolicies } from "../services/network-policies.js";
import type { NodeRegistry } from "../services/nodes.js";
import type { OidcUsers } from "../services/oidc-users.js";
import type { OidcVerifier } from "../services/oidc-verifier.js";
import type { PreviewService } from "../services/preview-service.js";
import type { PtySessions } from "../services/pty-sessions.js";
import type { Quotas } from "../services/quotas.js";
import type { RunService } from "../services/run-service.js";
import type { SandboxService } from "../services/sandbox-service.js";
import type { SignInLimiter } from "../services/sign-in-throttle.js";
import type { WebhookService } from "../services/webhooks.js";

/** What routes may use; built once in app.ts. */
export interface ServerContext {
  config: PolydevConfig;
  store: Store;
  /** Events, locks and counters (shared by replicas with Redis). */
  bus: Bus;
  driver: SandboxDriver;
  sandboxes: SandboxService;
  ptys: PtySessions;
  credentials: CredentialService;
  gateway: GatewayHub;
  networkPolicies: NetworkPolicies;
  egress: EgressHub;
  metrics: Metrics;
  events: EventHub;
  quotas: Quotas;
  logins: LoginService;
  runs: RunService;
  webhooks: WebhookService;
  mcpServers: McpServerService;
  gitCredentials: GitCredentials;
  gitAccess: GitAccess;
  keeps: KeepService;
  /** Preview URLs: links, the per-sandbox connection cap, reaching ports. */
  previews: PreviewService;
  /** Absent when the server was started without image storage. */
  images?: ImageService | undefined;
  sessions: BrowserSessions;
  signInThrottle: SignInLimiter;
  /** External issuers' JWTs; `enabled` is false when none are configured. */
  oidc: OidcVerifier;
  oidcUsers: OidcUsers;
  audit: AuditLog;
  /** This server as a node among replicas; absent on a single server (nothing is forwarded). */
  nodes?: NodeRegistry | undefined;
  clock: Clock;
  log: Logger;
}

export type ZodApp = ReturnType<typeof zodApp>;
export function zodApp(app: FastifyInstance) {
  return app.withTypeProvider<ZodTypeProvider>();
}
