/** The provider APIs the fake speaks. */
export type FakeProviderName = "anthropic" | "openai" | "gemini";

/** Token counts reported in a reply's usage; estimated from text length when omitted. */
export interface FakeUsage {
  inputTokens?: number;
  outputTokens?: number;
}

/** Options every successful turn accepts. */
export interface FakeTurnTiming {
  /** Pause before each streamed chunk, so a test can cancel mid-stream. Default 0. */
  delayMs?: number;
  usage?: FakeUsage;
}

/** Answer with plain assistant text (streamed a word at a time). */
export interface FakeTextTurn extends FakeTurnTiming {
  text: string;
}

/**
 * Ask the client to run a tool. With `command`, the fake calls the shell tool the request offers
 * (Claude's `Bash`, Codex's `exec_command` / `shell_command` / `shell`, Gemini's
 * `run_shell_command`; in Codex's code mode, its freeform `exec` tool with a script calling
 * `tools.exec_command`) with the argument shape that tool declares; `tool` names a specific tool
 * instead. With `arguments`, the call carries exactly those JSON arguments; with `input`, the raw
 * input of a freeform (OpenAI `custom`) tool.
 */
export interface FakeToolCallTurn extends FakeTurnTiming {
  toolCall:
    | { command: string; tool?: string }
    | { tool: string; arguments: Record<string, unknown> }
    | { tool: string; input: string };
  /** Text said before the call, as models often do. Default none. */
  text?: string;
}

/** Answer with an HTTP error in the provider's own error shape. */
export interface FakeErrorTurn {
  error: {
    status: number;
    /** Provider error type (`rate_limit_error`, `RESOURCE_EXHAUSTED`, ...); derived from `status` when omitted. */
    type?: string;
    message: string;
  };
}

export type FakeTurn = FakeTextTurn | FakeToolCallTurn | FakeErrorTurn;

/** A provider-neutral reading of a model request, handed to script functions. */
export interface FakeRequestView {
  provider: FakeProviderName;
  model: string;
  /** Whether the client asked for a streamed reply. */
  stream: boolean;
  /** The text of the latest user message, without harness-injected `<tag>…</tag>` context. */
  prompt: string;
  /**
   * The user's words in earlier messages of the conversation, oldest first: non-empty when a
   * client continues a session (a resumed CLI sends its earlier turns back).
   */
  earlierPrompts: string[];
  /** True when the latest message carries a tool result: the client is continuing a tool turn. */
  lastIsToolResult: boolean;
  /** Names of the tools the request offers, in order (Codex's namespaced and deferred tools included). */
  toolNames: string[];
  /** The subset of `toolNames` that take free text instead of JSON (OpenAI `custom` tools). */
  freeformToolNames: string[];
  /** The JSON schema the client demands the reply text follow (structured output), if any. */
  responseSchema?: unknown;
  /** The recorded request, body included, for anything the view leaves out. */
  request: RecordedRequest;
}

/** Returning `undefined` falls back to the default script. */
export type FakeTurnFunction = (
  view: FakeRequestView,
) => FakeTurn | undefined | Promise<FakeTurn | undefined>;

/**
 * A queue (each model request takes the next turn; once empty, the default script answers) or a
 * function. Requests demanding structured output (the Gemini CLI's model router) do not take
 * queued turns; functions see every request.
 */
export type FakeTurnSource = readonly FakeTurn[] | FakeTurnFunction;

/** One source shared by every provider, or one per provider (missing providers use the default). */
export type FakeScript = FakeTurnSource | Partial<Record<FakeProviderName, FakeTurnSource>>;

export interface RecordedRequest {
  provider: FakeProviderName | "unknown";
  method: string;
  /** The path without the query string, e.g. `/v1/messages`. */
  path: string;
  /** The query string parameters, e.g. `{ beta: "true" }`. */
  query: Record<string, string>;
  /** Every header as received (lower-case names), auth headers included, so tests can assert on keys. */
  headers: Record<string, string>;
  /** The JSON body parsed, the raw text when it is not JSON, `undefined` when empty. */
  body: unknown;
  receivedAt: Date;
  /** Set when the client went away before the reply finished (a cancelled stream). */
  clientDisconnected: boolean;
}

export interface FakeProvidersOptions {
  /** Default `127.0.0.1`. */
  host?: string;
  /** Default 0: a free port chosen by the OS. */
  port?: number;
  /** Default: the built-in default script (see README). */
  script?: FakeScript;
  /** Called once per request as it arrives, e.g. to log it. */
  onRequest?: (request: RecordedRequest) => void;
}

export interface FakeProviders {
  /** `http://host:port`, without a trailing slash; append `/v1` for OpenAI-style base URLs. */
  url: string;
  port: number;
  /** Replaces the script and its queues; later requests follow the new one. */
  setScript(script: FakeScript | undefined): void;
  /** Every request received, oldest first; clear with `requests.length = 0`. */
  requests: RecordedRequest[];
  close(): Promise<void>;
}
