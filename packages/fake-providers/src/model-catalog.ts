/**
 * Minimal model listings. Clients call these at start-up or to validate a model name; they only
 * need a well-formed answer, so each provider lists one fake model.
 */

export const FAKE_MODELS = { anthropic: "claude-fake", openai: "gpt-fake", gemini: "gemini-fake" } as const;

export function anthropicModelList() {
  const model = anthropicModel(FAKE_MODELS.anthropic);
  return { data: [model], has_more: false, first_id: model.id, last_id: model.id };
}

export function anthropicModel(id: string) {
  return { type: "model", id, display_name: `${id} (fake)`, created_at: "2025-01-01T00:00:00Z" };
}

export function openaiModelList() {
  return { object: "list", data: [openaiModel(FAKE_MODELS.openai)] };
}

export function openaiModel(id: string) {
  return { id, object: "model", created: 1735689600, owned_by: "polydev-fake" };
}

export function geminiModelList() {
  return { models: [geminiModel(FAKE_MODELS.gemini)] };
}

export function geminiModel(id: string) {
  return {
    name: `models/${id}`,
    displayName: `${id} (fake)`,
    inputTokenLimit: 1_048_576,
    outputTokenLimit: 65_536,
    supportedGenerationMethods: ["generateContent", "streamGenerateContent", "countTokens"],
  };
}
