import { defaultTurn } from "./default-script.js";
import type { Plan } from "./plan.js";
import { planTurn } from "./plan.js";
import type { FakeProviderName, FakeRequestView, FakeScript, FakeTurn, FakeTurnSource } from "./types.js";

type Source = { queue: FakeTurn[] } | { answer: Exclude<FakeTurnSource, readonly FakeTurn[]> };

function toSource(source: FakeTurnSource): Source {
  return typeof source === "function" ? { answer: source } : { queue: [...source] };
}

/** Hands out the scripted turn for each model request, falling back to the default script. */
export class ScriptPlayer {
  #sources: Partial<Record<FakeProviderName, Source>> = {};

  constructor(script: FakeScript | undefined) {
    this.setScript(script);
  }

  setScript(script: FakeScript | undefined): void {
    if (script === undefined) {
      this.#sources = {};
    } else if (typeof script === "function" || Array.isArray(script)) {
      // One source object for all three, so a shared queue is consumed across providers.
      const shared = toSource(script);
      this.#sources = { anthropic: shared, openai: shared, gemini: shared };
    } else {
      const sources: Partial<Record<FakeProviderName, Source>> = {};
      for (const [provider, source] of Object.entries(script)) {
        if (isProviderName(provider) && source !== undefined) sources[provider] = toSource(source);
      }
      this.#sources = sources;
    }
  }

  async planFor(view: FakeRequestView, requestBytes: number): Promise<Plan> {
    const source = this.#sources[view.provider];
    let turn: FakeTurn | undefined;
    // Structured-output calls are a CLI's side requests (the Gemini CLI's model router), not the
    // conversation a queue scripts; they get the default schema-shaped answer and leave the queue alone.
    if (source && "queue" in source)
      turn = view.responseSchema === undefined ? source.queue.shift() : undefined;
    else if (source) turn = await source.answer(view);
    return planTurn(turn ?? defaultTurn(view), view, requestBytes);
  }
}

function isProviderName(name: string): name is FakeProviderName {
  return name === "anthropic" || name === "openai" || name === "gemini";
}
