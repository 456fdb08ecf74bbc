export { API_VERSION, buildApp } from "./app.js";
export type { ConfigInput, PolydevConfig } from "./config.js";
export { configFromEnv, configSchema, parseConfig } from "./config.js";
export { createLogger } from "./logger.js";
export type { DriverFactory, DriverFactoryOptions, RunningServer, StartOptions } from "./server.js";
export { MASTER_KEY_FILE, startServer } from "./server.js";
export { ADMIN_KEY_FILE } from "./services/bootstrap.js";
export { CredentialService } from "./services/credential-service.js";
export type { ReconcileAction, ReconcileItem } from "./services/reconciler.js";
