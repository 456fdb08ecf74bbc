import { describe, expect, it } from "vitest";
import { DEFAULT_LOGIN_FLOWS, findRefusal } from "./login-flows.js";

// What the real CLIs printed after a wrong code on a machine without the providers' sites
// (claude-code and gemini-cli from npm, under a terminal, escape codes stripped).
const CLAUDE_AFTER_CODE =
  "Paste code here if prompted > Login failed: getaddrinfo ENOTFOUND platform.claude.com\n";
const GEMINI_AFTER_CODE = [
  "Enter the authorization code: wrongcode#state",
  "Failed to authenticate with authorization code:request to https://oauth2.googleapis.com/token failed, reason: getaddrinfo ENOTFOUND oauth2.googleapis.com",
  "",
  "Failed to authenticate with user code. Retrying...",
  "Please visit the following URL to authorize the application:",
  "",
].join("\n");

describe("a provider's refusal on the CLI's screen", () => {
  it("reads the reason off each CLI's refusal line", () => {
    expect(findRefusal(DEFAULT_LOGIN_FLOWS.claude, CLAUDE_AFTER_CODE)).toBe(
      "getaddrinfo ENOTFOUND platform.claude.com",
    );
    expect(findRefusal(DEFAULT_LOGIN_FLOWS.gemini, GEMINI_AFTER_CODE)).toBe(
      "request to https://oauth2.googleapis.com/token failed, reason: getaddrinfo ENOTFOUND oauth2.googleapis.com",
    );
    expect(findRefusal(DEFAULT_LOGIN_FLOWS.codex, "Login failed\n")).toBe("the provider did not accept it");
    expect(findRefusal(DEFAULT_LOGIN_FLOWS.claude, "Login failed: Invalid code.\n")).toBe("Invalid code");
  });

  it("waits for the whole line, and finds nothing in a login going well", () => {
    expect(findRefusal(DEFAULT_LOGIN_FLOWS.claude, "Login failed: getaddrinfo ENOT")).toBeUndefined();
    expect(findRefusal(DEFAULT_LOGIN_FLOWS.claude, "Login successful.\n")).toBeUndefined();
  });
});
