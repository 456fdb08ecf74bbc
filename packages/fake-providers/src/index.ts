export { defaultTurn, parseCreateFile } from "./default-script.js";
export type { FakeForge, FakeForgeOptions, ForgeCall } from "./forge.js";
export { startFakeForge } from "./forge.js";
export { FAKE_MODELS } from "./model-catalog.js";
export { startFakeProviders } from "./server.js";
export type { OfferedTools, ToolCallPlan } from "./shell-tools.js";
export { findShellTool, shellToolCall } from "./shell-tools.js";
export type { SseEvent } from "./testing/sse-events.js";
export { parseSseEvents, readSseEvents, sseJson } from "./testing/sse-events.js";
export type {
  FakeErrorTurn,
  FakeProviderName,
  FakeProviders,
  FakeProvidersOptions,
  FakeRequestView,
  FakeScript,
  FakeTextTurn,
  FakeToolCallTurn,
  FakeTurn,
  FakeTurnFunction,
  FakeTurnSource,
  FakeTurnTiming,
  FakeUsage,
  RecordedRequest,
} from "./types.js";
