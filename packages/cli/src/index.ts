export { DRIVERS } from "./drivers.js";
export { UP_HELP, up } from "./up.js";
