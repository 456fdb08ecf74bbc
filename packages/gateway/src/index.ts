export { createGateway } from "./gateway.js";
export type { Gateway, GatewayOptions, PlaceholderOwner, UsageRecord } from "./gateway.js";
export { GATEWAY_PROVIDERS, applyCredential, placeholderFrom } from "./providers.js";
export type { CredentialKind, GatewayProvider, UpstreamCredential } from "./providers.js";
export { UsageMeter, foldUsage } from "./usage-meter.js";
export type { Usage } from "./usage-meter.js";
