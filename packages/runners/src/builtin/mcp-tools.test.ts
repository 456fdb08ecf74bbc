import { describe, expect, it } from "vitest";
import { mcpToolName } from "./mcp-tools.js";

describe("mcpToolName", () => {
  it("keeps to the providers' tool-name rule [A-Za-z0-9_-]{1,64}", () => {
    expect(mcpToolName("probe", "ping")).toBe("mcp__probe__ping");
    expect(mcpToolName("files", "read.file/v2 ü")).toBe("mcp__files__read_file_v2__");
    const long = mcpToolName("server", "x".repeat(200));
    expect(long).toHaveLength(64);
    expect(long).toMatch(/^[A-Za-z0-9_-]{1,64}$/);
  });
});
