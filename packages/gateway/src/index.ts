export type { Gateway, GatewayOptions, GatewayRefusal, PlaceholderOwner, UsageRecord } from "./gateway.js";
export { createGateway, GATEWAY_SERVER_OPTIONS } from "./gateway.js";
export type { ProviderRoute } from "./provider-routes.js";
export { PROVIDER_ROUTES } from "./provider-routes.js";
export type { CredentialKind, GatewayProvider, UpstreamCredential } from "./providers.js";
export { applyCredential, GATEWAY_PROVIDERS, placeholderFrom } from "./providers.js";
export type { Usage } from "./usage-meter.js";
export { foldUsage, UsageMeter } from "./usage-meter.js";
