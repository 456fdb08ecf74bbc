export type { DriverContractCase, DriverContractOptions, DriverContractSetup } from "./driver-contract.js";
export { DRIVER_CONTRACT_CASES, runDriverContract } from "./driver-contract.js";
export type { ProbeServer } from "./host-probes.js";
export { startProbeServer } from "./host-probes.js";
export type { CommandResult } from "./run-command.js";
export { readText, runCommand, waitFor, writeText } from "./run-command.js";
