import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runDriverContract } from "@polydev/core/testing";
import { NamespaceDriver } from "./namespace-driver.js";

runDriverContract("namespace", async () => {
  const rootDir = await mkdtemp(join(tmpdir(), "polydev-ns-contract-"));
  return {
    driver: new NamespaceDriver({ rootDir }),
    hostSecretPaths: [rootDir],
    cleanup: () => rm(rootDir, { recursive: true, force: true }),
  };
});
