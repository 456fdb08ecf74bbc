/**
 * The OpenAPI document without a running server: routes are registered (their schemas are the
 * source of the document) but no service is ever called. The SDK's types are generated from it.
 */
import type { FastifyInstance } from "fastify";
import { buildApp } from "./app.js";
import { parseConfig } from "./config.js";
import type { ServerContext } from "./http/context.js";
import { createLogger } from "./logger.js";

export async function openApiDocument(): Promise<Record<string, unknown>> {
  const config = parseConfig({ dataDir: "/nonexistent/polydev-openapi" });
  // Only the config and the logger are read while routes register; services are used per request.
  const context = { config, log: createLogger("silent") } as ServerContext;
  const app: FastifyInstance = await buildApp(context);
  await app.ready();
  const document = app.swagger() as Record<string, unknown>;
  await app.close();
  return document;
}
