export type { GvisorDriverOptions, GvisorPlatform } from "./gvisor-driver.js";
export { GvisorDriver } from "./gvisor-driver.js";
