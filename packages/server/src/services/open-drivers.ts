/**
 * The drivers a server runs: the default one (`config.driver`) and any others it is asked for
 * (`config.drivers`), each made by the factory the entry point registered under its name and
 * probed before the server answers anything. A driver that fails its probe keeps the server from
 * starting, with the probe's own words on what to install: a configured driver is a promise to
 * users who will ask for it by name.
 */
import { join } from "node:path";
import type { DriverSetMember } from "@polydev/core";
import { DriverSet, PolydevError } from "@polydev/core";
import type { StoragePool } from "@polydev/images";
import type { Logger } from "pino";
import type { PolydevConfig } from "../config.js";
import type { DriverFactory } from "../server.js";

/** The drivers the configuration names, default first; unknown ones are refused before anything starts. */
export function configuredDrivers(config: PolydevConfig, factories: Record<string, DriverFactory>): string[] {
  const names = [...new Set([config.driver, ...config.drivers])];
  const unknown = names.filter((name) => factories[name] === undefined);
  if (unknown.length > 0) {
    throw new PolydevError(
      "invalid_request",
      `unknown driver ${unknown.map((name) => `"${name}"`).join(", ")}; this build has: ${Object.keys(factories).join(", ") || "none"}`,
    );
  }
  return names;
}

export async function openDrivers(
  config: PolydevConfig,
  factories: Record<string, DriverFactory>,
  log: Logger,
  host: { storage: StoragePool | undefined; toolbox: (() => string | undefined) | undefined },
): Promise<DriverSet> {
  const names = configuredDrivers(config, factories);
  const members: DriverSetMember[] = [];
  for (const name of names) {
    const factory = factories[name] as DriverFactory;
    const driver = factory({
      // The namespace driver keeps the directory it always had, so its sandboxes survive an
      // upgrade; every other driver gets its own, which only it lists.
      rootDir: join(config.dataDir, name === "namespace" ? "sandboxes" : `sandboxes-${name}`),
      hostUidRegistryDir: config.hostUidRegistryDir,
      log: log.child({ component: "driver", driver: name }),
      storage: host.storage,
      toolbox: host.toolbox,
    });
    if (driver.name !== name) {
      throw new PolydevError(
        "internal",
        `the factory registered as "${name}" made a driver named "${driver.name}"`,
      );
    }
    const info = await driver.probe();
    log.info({ driver: info.name, features: info.features, default: name === config.driver }, "driver ready");
    members.push({ driver, info });
  }
  return new DriverSet(members, config.driver);
}
