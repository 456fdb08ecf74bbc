/**
 * The checks every address passes, whether it came from a DNS answer we give or is where a
 * connection goes: never-reachable space is refused whatever the rules say, a deny CIDR
 * refuses, and private space only passes when an allow CIDR inside it is listed.
 */
import { type Cidr, type IpAddress, inAnyCidr, NEVER_REACHABLE, PRIVATE_RANGES } from "./addresses.js";
import type { CompiledEgressRules } from "./rules.js";

export type AddressVerdict = "ok" | "never_reachable" | "denied_address" | "private_address";

export function addressVerdict(
  address: IpAddress,
  rules: CompiledEgressRules,
  neverReachable: readonly Cidr[],
): AddressVerdict {
  if (inAnyCidr(NEVER_REACHABLE, address) || inAnyCidr(neverReachable, address)) return "never_reachable";
  if (rules.addressDenied(address)) return "denied_address";
  if (inAnyCidr(PRIVATE_RANGES, address) && !rules.privateUnlocked(address)) return "private_address";
  return "ok";
}
