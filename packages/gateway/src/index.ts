export type { Gateway, GatewayOptions, PlaceholderOwner, UsageRecord } from "./gateway.js";
export { createGateway } from "./gateway.js";
export type { CredentialKind, GatewayProvider, UpstreamCredential } from "./providers.js";
export { applyCredential, GATEWAY_PROVIDERS, placeholderFrom } from "./providers.js";
export type { Usage } from "./usage-meter.js";
export { foldUsage, UsageMeter } from "./usage-meter.js";
