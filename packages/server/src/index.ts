export { API_VERSION, buildApp } from "./app.js";
export type { ConfigInput, PolydevConfig } from "./config.js";
export { configFromEnv, configSchema, parseConfig } from "./config.js";
export { createLogger } from "./logger.js";
export { openApiDocument } from "./openapi.js";
export type {
  DriverFactory,
  DriverFactoryOptions,
  DriverRegistration,
  RunningServer,
  StartOptions,
} from "./server.js";
export { defineDriver, MASTER_KEY_FILE, startServer } from "./server.js";
export { ADMIN_KEY_FILE } from "./services/bootstrap.js";
export { CredentialService } from "./services/credential-service.js";
export { countHookSecretsByKeyId, rewrapHookSecrets } from "./services/hook-secrets.js";
export { configuredDrivers } from "./services/open-drivers.js";
export type { ReconcileAction, ReconcileItem } from "./services/reconciler.js";
