/**
 * Regenerates the SDK's API types from the server's route schemas (through its OpenAPI
 * document): `node --conditions=source --import tsx packages/sdk/scripts/generate-types.ts`.
 * A test fails when the committed types no longer match the server.
 */
import { writeFile } from "node:fs/promises";
import { resolve } from "node:path";
import { openApiDocument } from "@polydev/server";
import openapiTS, { astToString } from "openapi-typescript";

export async function generateTypes(): Promise<string> {
  const document = await openApiDocument();
  const ast = await openapiTS(JSON.parse(JSON.stringify(document)));
  return `// Generated from the server's route schemas by packages/sdk/scripts/generate-types.ts. Do not edit.\n${astToString(ast)}`;
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename)) {
  await writeFile(resolve(import.meta.dirname, "../src/api-types.ts"), await generateTypes());
}
