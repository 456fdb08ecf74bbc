import { describe, expect, it } from "vitest";
import { addProjectBody } from "./project-source";

describe("addProjectBody", () => {
  it("clones what reads as a git URL", () => {
    expect(addProjectBody(" https://github.com/org/app.git ", "")).toEqual({
      url: "https://github.com/org/app.git",
    });
    expect(addProjectBody("git://127.0.0.1/app.git", " npm test ")).toEqual({
      url: "git://127.0.0.1/app.git",
      check: "npm test",
    });
    expect(addProjectBody("ssh://git@example.com/app.git", "")).toHaveProperty("url");
  });

  it("makes anything else a folder of the sandbox", () => {
    expect(addProjectBody("work/app", "make test")).toEqual({ path: "work/app", check: "make test" });
    // Not a network URL: the server refuses file:// clones, so it goes as a path and is refused there.
    expect(addProjectBody("file:///etc", "")).toEqual({ path: "file:///etc" });
  });
});
