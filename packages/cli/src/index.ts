export type { DriverSettings } from "./drivers.js";
export { DRIVERS, driverSettingsFromEnv, driversFor } from "./drivers.js";
export { UP_HELP, up } from "./up.js";
