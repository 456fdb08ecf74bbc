export { buildApp, API_VERSION } from "./app.js";
export { configFromEnv, configSchema, parseConfig } from "./config.js";
export type { ConfigInput, PolydevConfig } from "./config.js";
export { createLogger } from "./logger.js";
export { startServer } from "./server.js";
export type { DriverFactory, DriverFactoryOptions, RunningServer, StartOptions } from "./server.js";
export { ADMIN_KEY_FILE } from "./services/bootstrap.js";
export type { ReconcileItem, ReconcileAction } from "./services/reconciler.js";
