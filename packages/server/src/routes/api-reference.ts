/**
 * The API reference: Swagger UI (from npm's swagger-ui-dist, served from this server: no CDN) over
 * the same OpenAPI document the SDK's types come from, at /api-reference. The page and the
 * document need no key, like any published API reference; "Authorize" takes one to try calls.
 */
import { createRequire } from "node:module";
import { dirname } from "node:path";
import type { FastifyInstance } from "fastify";
import { WEB_SECURITY_HEADERS } from "./web.js";

export const API_REFERENCE_PATH = "/api-reference";

const swaggerUiDir = dirname(createRequire(import.meta.url).resolve("swagger-ui-dist/package.json"));

/** The files of swagger-ui-dist the page loads; nothing else of the package is served. */
const ASSETS: ReadonlySet<string> = new Set(["swagger-ui-bundle.js", "swagger-ui.css"]);

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Polydev API reference</title>
<link rel="stylesheet" href="${API_REFERENCE_PATH}/swagger-ui.css">
</head>
<body>
<div id="api-reference"></div>
<script src="${API_REFERENCE_PATH}/swagger-ui-bundle.js"></script>
<script src="${API_REFERENCE_PATH}/start.js"></script>
</body>
</html>
`;

/** A file, not inline: the page's Content-Security-Policy allows only this server's scripts. */
const START_SCRIPT = `window.ui = SwaggerUIBundle({
  url: "/v1/openapi.json",
  dom_id: "#api-reference",
  deepLinking: true,
  // Swagger's public validator would be sent the document: none.
  validatorUrl: null,
  persistAuthorization: false,
});
`;

export function apiReferenceRoutes(app: FastifyInstance): void {
  app.get(API_REFERENCE_PATH, { schema: { hide: true } }, async (_request, reply) =>
    reply
      .headers(WEB_SECURITY_HEADERS)
      .header("cache-control", "no-cache")
      .type("text/html; charset=utf-8")
      .send(PAGE),
  );
  app.get(`${API_REFERENCE_PATH}/start.js`, { schema: { hide: true } }, async (_request, reply) =>
    reply
      .headers(WEB_SECURITY_HEADERS)
      .header("cache-control", "no-cache")
      .type("text/javascript; charset=utf-8")
      .send(START_SCRIPT),
  );
  app.get<{ Params: { file: string } }>(
    `${API_REFERENCE_PATH}/:file`,
    { schema: { hide: true } },
    async (request, reply) => {
      const file = request.params.file;
      if (!ASSETS.has(file)) return reply.callNotFound();
      reply.headers(WEB_SECURITY_HEADERS);
      return reply.sendFile(file, swaggerUiDir, { maxAge: 60 * 60 * 1000 });
    },
  );
}
