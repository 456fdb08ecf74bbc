import { afterAll, beforeAll } from "vitest";
import { openPostgresStore } from "./postgres.js";
import { startTestPostgres, type TestPostgres } from "./testing/postgres-server.js";
import { runStoreContract } from "./testing/store-contract.js";

let server: TestPostgres;
beforeAll(async () => {
  server = await startTestPostgres();
});
afterAll(async () => {
  await server?.stop();
});

runStoreContract("postgres", async () => openPostgresStore({ url: await server.createDatabase() }));
