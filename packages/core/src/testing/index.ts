export type { OpenBus } from "./bus-contract.js";
export { runBusContract } from "./bus-contract.js";
export type { DriverContractCase, DriverContractOptions, DriverContractSetup } from "./driver-contract.js";
export { DRIVER_CONTRACT_CASES, runDriverContract } from "./driver-contract.js";
export type { EscapePayloads } from "./escape-payloads.js";
export { preparePayloads } from "./escape-payloads.js";
export type {
  EscapeProbe,
  EscapeProbeOptions,
  EscapeProbeSetup,
  LiveSandbox,
  SharedSandboxName,
} from "./escape-probe-context.js";
export { EscapeProbeContext, HOST_SECRET_VARIABLE, parseProbeOutput } from "./escape-probe-context.js";
export type { EscapeProbeId } from "./escape-probe-ids.js";
export { ESCAPE_PROBES, probeClass } from "./escape-probe-ids.js";
export {
  CONNECT_SCRIPT,
  OPEN_PATHS_SCRIPT,
  probeProgram,
  SURVEY_SCRIPT,
  TERMINAL_INJECT_SCRIPT,
} from "./escape-probe-scripts.js";
export { ALL_ESCAPE_PROBES, runEscapeProbes } from "./escape-probes.js";
export type { ProbeServer } from "./host-probes.js";
export { startProbeServer } from "./host-probes.js";
export type { CommandResult, TerminalRun } from "./run-command.js";
export { readText, runCommand, runInBackground, runInPty, waitFor, writeText } from "./run-command.js";
export { askTestBroker } from "./test-backend-broker.js";
export type {
  TestNetwork,
  TestNetworkDatagram,
  TestNetworkDnsQuery,
  TestNetworkOptions,
  TestNetworkRequest,
} from "./test-network.js";
export { startTestNetwork, testNetworkUnavailable } from "./test-network.js";
export { withDefaultImage } from "./with-default-image.js";
