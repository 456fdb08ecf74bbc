import { PassThrough } from "node:stream";
import { PolydevError } from "@polydev/core";
import Fastify from "fastify";
import { describe, expect, it } from "vitest";
import { registerErrorHandler } from "./error-handler.js";

describe("error answers", () => {
  it("are JSON in the error shape even when the route had set another type (a raw stream that failed before its first byte)", async () => {
    const app = Fastify();
    registerErrorHandler(app);
    app.get("/output", async (_request, reply) => {
      const output = new PassThrough();
      setImmediate(() => output.destroy(new PolydevError("sandbox_not_running", "the sandbox stopped")));
      return reply.header("content-type", "application/octet-stream").send(output);
    });
    const response = await app.inject({ method: "GET", url: "/output" });
    expect(response.statusCode).toBe(409);
    expect(response.headers["content-type"]).toContain("application/json");
    expect(response.json()).toEqual({
      error: { code: "sandbox_not_running", message: "the sandbox stopped" },
    });
    await app.close();
  });
});
