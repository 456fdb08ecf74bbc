export { up, UP_HELP } from "./up.js";
export { DRIVERS } from "./drivers.js";
