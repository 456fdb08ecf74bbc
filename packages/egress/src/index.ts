export type { Cidr, IpAddress } from "./addresses.js";
export { inAnyCidr, NEVER_REACHABLE, PRIVATE_RANGES, parseAddress } from "./addresses.js";
export type { EgressAuditEvent, EgressReason } from "./audit.js";
export type { EgressGuardOptions, EgressSandbox } from "./egress-guard.js";
export {
  EgressGuard,
  MAX_DNS_MESSAGES_PER_CONNECTION,
  MAX_DNS_QUERY_BYTES,
  MAX_PEEK_BYTES,
} from "./egress-guard.js";
export { ALWAYS_DENIED, deniedDestinations } from "./host-denied.js";
export type { RouterNetwork, RouterNetworkOptions } from "./router-network.js";
export {
  ROUTER_ADDRESS,
  ROUTER_DNS,
  ROUTER_NETNS,
  recordedSlirpPid,
  routerNetworkMissing,
  routerNetworkRunning,
  routerRuleset,
  SANDBOX_NETNS,
  setUpRouterNetwork,
  tearDownRouterNetwork,
} from "./router-network.js";
export type { CompiledEgressRules, EgressRule, NameVerdict } from "./rules.js";
export {
  compileEgressRules,
  egressRuleProblem,
  MAX_EGRESS_RULE_LENGTH,
  MAX_EGRESS_RULES,
  parseEgressRule,
} from "./rules.js";
export {
  egressAvailable,
  SLIRP_CONSOLE_LIMIT_BYTES,
  SLIRP4NETNS,
  slirpArgs,
  slirpReady,
  spawnSlirp,
} from "./slirp.js";
export type { UpstreamProxy } from "./upstream.js";
export { parseUpstreamProxy } from "./upstream.js";
