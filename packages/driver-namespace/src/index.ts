export { namespaceLauncher, SANDBOX_HOME, SANDBOX_UID } from "./launcher.js";
export type { DriverLog, NamespaceDriverOptions } from "./namespace-driver.js";
export { NamespaceDriver } from "./namespace-driver.js";
export type { NamespaceDriverSettings } from "./settings.js";
export { namespaceDriverSettings } from "./settings.js";
