import { isPolydevError } from "@polydev/core";
import { describe, expect, it } from "vitest";
import { parseAddress } from "./addresses.js";
import { compileEgressRules, egressRuleProblem, parseEgressRule } from "./rules.js";

const address = (text: string) => {
  const parsed = parseAddress(text);
  if (parsed === undefined) throw new Error(`bad test address ${text}`);
  return parsed;
};

describe("egress rules", () => {
  it("accepts names, wildcards, *, addresses and CIDRs, IPv4 and IPv6", () => {
    expect(parseEgressRule("Registry.Example.com.")).toEqual({ kind: "name", name: "registry.example.com" });
    expect(parseEgressRule("*.example.com")).toEqual({ kind: "wildcard", suffix: "example.com" });
    expect(parseEgressRule("*")).toEqual({ kind: "any-name" });
    for (const entry of ["10.20.1.5", "10.20.0.0/16", "2001:db8::/32", "::1", "::ffff:10.0.0.0/104"]) {
      expect(parseEgressRule(entry).kind).toBe("cidr");
    }
  });

  it("refuses bad entries with a message saying what is accepted", () => {
    for (const entry of [
      "",
      " a.com",
      "a..com",
      "*.",
      "a.*.com",
      "*example.com",
      "10.0.0.0/33",
      "10.0.0",
      "1.2.3.4.5",
      "fe80::/200",
      "bücher.de",
      "-a.com",
      "x".repeat(254),
    ]) {
      const problem = egressRuleProblem(entry);
      expect(problem, entry).toMatch(/accepted: a host name/);
      try {
        parseEgressRule(entry);
        expect.unreachable(entry);
      } catch (error) {
        expect(isPolydevError(error) && error.code === "invalid_request").toBe(true);
      }
    }
    expect(egressRuleProblem("bücher.de")).toMatch(/punycode/);
    expect(egressRuleProblem("xn--bcher-kva.de")).toBeUndefined();
  });

  it("refuses a list longer than 256 entries", () => {
    const allow = Array.from({ length: 257 }, (_, index) => `host${index}.example.com`);
    expect(() => compileEgressRules({ allow, deny: [] })).toThrow(/at most 256/);
  });

  it("matches names: exact, strictly-below wildcards, deny wins", () => {
    const rules = compileEgressRules({
      allow: ["registry.example.com", "*.git.example.com"],
      deny: ["bad.git.example.com"],
    });
    expect(rules.nameVerdict("registry.example.com")).toBe("allowed");
    expect(rules.nameVerdict("a.registry.example.com")).toBe("not_listed");
    expect(rules.nameVerdict("x.git.example.com")).toBe("allowed");
    expect(rules.nameVerdict("git.example.com")).toBe("not_listed");
    expect(rules.nameVerdict("evilgit.example.com")).toBe("not_listed");
    expect(rules.nameVerdict("bad.git.example.com")).toBe("denied");
    expect(compileEgressRules({ allow: ["*"], deny: ["*.corp.example"] }).nameVerdict("a.corp.example")).toBe(
      "denied",
    );
  });

  it("unlocks private space only with an allow CIDR inside it", () => {
    const narrow = compileEgressRules({ allow: ["10.20.0.0/16"], deny: ["10.20.9.0/24"] });
    expect(narrow.privateUnlocked(address("10.20.1.1"))).toBe(true);
    expect(narrow.privateUnlocked(address("10.21.1.1"))).toBe(false);
    expect(narrow.addressDenied(address("10.20.9.9"))).toBe(true);
    const wide = compileEgressRules({ allow: ["*", "0.0.0.0/0", "8.0.0.0/5"], deny: [] });
    expect(wide.addressAllowed(address("10.1.1.1"))).toBe(true);
    expect(wide.privateUnlocked(address("10.1.1.1"))).toBe(false);
    // An IPv4-mapped IPv6 address is the IPv4 address it carries.
    expect(narrow.privateUnlocked(address("::ffff:10.20.3.4"))).toBe(true);
  });
});
