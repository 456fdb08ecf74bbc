import { describe, expect, it } from "vitest";
import { routerRuleset } from "./router-network.js";

describe("the router namespace's ruleset", () => {
  it("rejects the deny list before it forwards, and masquerades only onto slirp4netns's tap", () => {
    const rules = routerRuleset(["169.254.0.0/16", "192.0.2.7/32"]);
    const forward = rules.slice(rules.indexOf("chain forward"));
    expect(forward.indexOf("ip daddr { 169.254.0.0/16, 192.0.2.7/32 } reject")).toBeGreaterThan(0);
    expect(forward.indexOf("reject")).toBeLessThan(forward.indexOf('oifname "tap0" accept'));
    expect(rules).toContain("policy drop");
    expect(rules).toContain('oifname "tap0" masquerade');
  });

  it("writes nothing that is not an IPv4 CIDR into it", () => {
    expect(() => routerRuleset(["10.0.0.0/8 } accept; {"])).toThrow(/not an IPv4 CIDR/);
    expect(() => routerRuleset(["::1/128"])).toThrow(/not an IPv4 CIDR/);
  });
});
