import { describe, expect, it } from "vitest";
import { DEFAULT_FILE_CONTENT, defaultTurn, parseCreateFile, TOOL_HINT } from "./default-script.js";
import { planTurn } from "./plan.js";
import { sampleFromSchema } from "./schema-sample.js";
import type { FakeRequestView } from "./types.js";

/** What Polydev's built-in agent offers (packages/runners/src/builtin/tools.ts). */
const BUILTIN_TOOLS = ["read_file", "write_file", "edit_file", "list_files", "search_files", "run_command"];

function view(prompt: string, toolNames: string[]): FakeRequestView {
  return {
    provider: "anthropic",
    model: "claude-test",
    stream: true,
    prompt,
    earlierPrompts: [],
    lastIsToolResult: false,
    toolNames,
    freeformToolNames: [],
    request: {
      provider: "anthropic",
      method: "POST",
      path: "/v1/messages",
      query: {},
      headers: {},
      body: undefined,
      receivedAt: new Date(),
      clientDisconnected: false,
    },
  };
}

describe("default script", () => {
  it("reads `create file NAME` with optional content", () => {
    expect(parseCreateFile("Please create file out/hello.txt.")).toEqual({
      fileName: "out/hello.txt",
      content: DEFAULT_FILE_CONTENT,
    });
    expect(parseCreateFile("create a file named a.md containing 'x y'")).toEqual({
      fileName: "a.md",
      content: "x y",
    });
    expect(parseCreateFile('Create the file b.txt with content "it\'s"')).toEqual({
      fileName: "b.txt",
      content: "it's",
    });
    expect(parseCreateFile("say hi")).toBeUndefined();
  });

  it("samples the smallest value a schema allows", () => {
    expect(
      sampleFromSchema({
        type: "object",
        properties: {
          name: { type: "string" },
          count: { type: ["integer", "null"], minimum: 3 },
          kind: { enum: ["a", "b"] },
          tags: { type: "array", items: { type: "string" } },
          nested: { type: "OBJECT", properties: { ok: { type: "BOOLEAN" } } },
        },
      }),
    ).toEqual({ name: "fake", count: 3, kind: "a", tags: [], nested: { ok: false } });
  });

  it("drives the built-in agent's run_command tool with its { command } shape", () => {
    const turn = defaultTurn(view("create file hi.txt", BUILTIN_TOOLS));
    const plan = planTurn(turn, view("create file hi.txt", BUILTIN_TOOLS), 100);
    expect(plan).toMatchObject({
      kind: "reply",
      toolCall: {
        name: "run_command",
        arguments: { command: "printf '%s\\n' 'hello from polydev' > 'hi.txt'" },
      },
    });
  });

  it("greets with a hint that makes the agent act when a shell tool is offered, plainly otherwise", () => {
    expect(defaultTurn(view("say hello", BUILTIN_TOOLS))).toEqual({
      text: `Hello from the fake anthropic provider. ${TOOL_HINT}`,
    });
    expect(defaultTurn(view("say hello", []))).toEqual({ text: "Hello from the fake anthropic provider." });
    expect(parseCreateFile(TOOL_HINT)).toEqual({ fileName: "hello.txt", content: DEFAULT_FILE_CONTENT });
  });
});
