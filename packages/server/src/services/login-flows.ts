/**
 * How each provider's own CLI signs a user in without a local browser (see shared/CLI-NOTES.md):
 * the command to run under a terminal, how the user finishes, and where the CLI leaves the
 * credential it obtained.
 */
import type { GatewayProvider } from "@polydev/gateway";

export const LOGIN_PROVIDERS = ["claude", "codex", "gemini"] as const;
export type LoginProvider = (typeof LOGIN_PROVIDERS)[number];

export interface LoginFlow {
  /** The credential this login produces, as the gateway names providers. */
  credentialProvider: GatewayProvider;
  argv: string[];
  env: Record<string, string>;
  /** Files written into the home before the CLI starts (settings that select the login type). */
  files: Record<string, string>;
  /** Where the CLI writes its credential, relative to the home. */
  credentialFile: string;
  /** How the user hands the result back: a pasted code, or the localhost callback URL. */
  finish: "code" | "callback";
  /**
   * A line the CLI prints when the provider refused what the user handed back (its group 1, the
   * reason). The CLIs then wait for another try instead of exiting, so the login fails on it.
   */
  refusal: RegExp;
}

export const DEFAULT_LOGIN_FLOWS: Record<LoginProvider, LoginFlow> = {
  claude: {
    credentialProvider: "anthropic",
    argv: ["claude", "auth", "login"],
    env: {},
    files: {},
    credentialFile: ".claude/.credentials.json",
    finish: "code",
    // "Login failed: Request failed with status code 400", then it waits for another code.
    refusal: /Login failed:?[ \t]*([^\n]*)/,
  },
  codex: {
    credentialProvider: "openai",
    // Codex's browser flow listens on localhost:1455 inside the sandbox; the user's browser
    // ends on that URL, which they hand back to be relayed.
    argv: ["codex", "login"],
    env: {},
    files: { ".codex/config.toml": "[analytics]\nenabled = false\n" },
    credentialFile: ".codex/auth.json",
    finish: "callback",
    refusal: /(?:Login failed|Error logging in)[:.]?[ \t]*([^\n]*)/,
  },
  gemini: {
    credentialProvider: "gemini",
    argv: ["gemini"],
    env: { NO_BROWSER: "true", GEMINI_CLI_NO_RELAUNCH: "true" },
    files: {
      ".gemini/settings.json": JSON.stringify({
        security: { auth: { selectedType: "oauth-personal" } },
        privacy: { usageStatisticsEnabled: false },
      }),
    },
    credentialFile: ".gemini/oauth_creds.json",
    finish: "code",
    // "Failed to authenticate with authorization code:<reason>", then it prints a new URL.
    refusal: /Failed to authenticate with (?:authorization|user) code[:.]?[ \t]*([^\n]*)/,
  },
};

type Json = Record<string, unknown>;
const obj = (value: unknown): Json | undefined =>
  typeof value === "object" && value !== null ? (value as Json) : undefined;

/**
 * The access token (and its expiry, ms) inside a CLI's credential file. Files differ per CLI;
 * the stand-in used in tests writes the Claude shape.
 */
export function accessTokenFrom(
  provider: GatewayProvider,
  fileText: string,
): { token: string; expiresAt?: number } {
  const file = obj(JSON.parse(fileText)) ?? {};
  let token: unknown;
  let expiresAt: unknown;
  if (provider === "anthropic") {
    const oauth = obj(file.claudeAiOauth) ?? file;
    token = oauth.accessToken;
    expiresAt = oauth.expiresAt;
  } else if (provider === "openai") {
    token = obj(file.tokens)?.access_token ?? file.OPENAI_API_KEY;
  } else {
    token = file.access_token;
    expiresAt = file.expiry_date;
  }
  if (typeof token !== "string" || token.length === 0) {
    throw new Error("the CLI's credential file holds no access token");
  }
  return typeof expiresAt === "number" ? { token, expiresAt } : { token };
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: terminal escape sequences begin with ESC (0x1b).
const ANSI = /\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][0-9A-Za-z]/g;

export function stripTerminalCodes(text: string): string {
  return text.replace(ANSI, "").replace(/\r/g, "");
}

/** The first sign-in URL a CLI printed, and a device code if it showed one. */
export function findLoginPrompt(screen: string): { url?: string; userCode?: string } {
  const url = /https:\/\/[^\s"'<>]+/.exec(screen)?.[0];
  const userCode = /\b([A-Z0-9]{4}-[A-Z0-9]{4,5})\b/.exec(screen)?.[1];
  return { ...(url === undefined ? {} : { url }), ...(userCode === undefined ? {} : { userCode }) };
}

/**
 * What the provider said when it refused, readable: the CLI's reason on its refusal line, with
 * what follows it on the screen (prompts, a new URL) left out.
 */
export function findRefusal(flow: LoginFlow, screen: string): string | undefined {
  // Only whole lines: a reason still arriving would be cut.
  const match = flow.refusal.exec(screen.slice(0, screen.lastIndexOf("\n") + 1));
  if (!match) return undefined;
  // Its own closing full stop goes: the caller's sentence goes on after it.
  const reason = (match[1] ?? "")
    .trim()
    .slice(0, 300)
    .replace(/[.\s]+$/, "");
  return reason.length > 0 ? reason : "the provider did not accept it";
}
