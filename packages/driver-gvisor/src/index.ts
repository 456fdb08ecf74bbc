export type { GvisorDriverOptions, GvisorPlatform } from "./gvisor-driver.js";
export { GvisorDriver } from "./gvisor-driver.js";
export type { GvisorDriverSettings } from "./settings.js";
export { gvisorDriverSettings } from "./settings.js";
