import { describe, expect, it } from "vitest";
import { DEFAULT_FILE_CONTENT, parseCreateFile } from "./default-script.js";
import { sampleFromSchema } from "./schema-sample.js";

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
});
