export { EnvelopeVault } from "./envelope-vault.js";
export type { Keyring } from "./keyring.js";
export { keyIdOf, loadKeyring, parseMasterKey, retireMasterKey, rotateMasterKey } from "./keyring.js";
export { Secret } from "./secret.js";
