/**
 * The drivers a server runs: the default one (`config.driver`) and any others it is asked for
 * (`config.drivers`), each made by the factory the entry point registered under its name and
 * probed before the server answers anything. A driver that fails its probe keeps the server from
 * starting, with the probe's own words on what to install: a configured driver is a promise to
 * users who will ask for it by name.
 */
import { join } from "node:path";
import type { DriverSetMember, SandboxDriver } from "@polydev/core";
import { DriverSet, PolydevError } from "@polydev/core";
import type { StoragePool } from "@polydev/images";
import type { Logger } from "pino";
import type { PolydevConfig } from "../config.js";
import { driverSettingVariable } from "../config.js";
import type { DriverFactory, DriverFactoryOptions } from "../server.js";

/** A configured driver with its settings checked: what makes it. */
interface ConfiguredDriver {
  name: string;
  make(options: DriverFactoryOptions): SandboxDriver;
}

/**
 * The drivers the configuration names, default first, each with its settings validated by its
 * own schema. Unknown drivers and bad settings (of any driver, configured or not: a typo should
 * not wait for the day the driver is turned on) are refused before anything starts.
 */
export function configuredDrivers(
  config: PolydevConfig,
  factories: Record<string, DriverFactory>,
): ConfiguredDriver[] {
  const names = [...new Set([config.driver, ...config.drivers])];
  const known = Object.keys(factories).join(", ") || "none";
  const unknown = names.filter((name) => factories[name] === undefined);
  if (unknown.length > 0) {
    throw new PolydevError(
      "invalid_request",
      `unknown driver ${unknown.map((name) => `"${name}"`).join(", ")}; this build has: ${known}`,
    );
  }
  for (const name of Object.keys(config.driverSettings)) {
    if (factories[name] === undefined) {
      const variables = Object.keys(config.driverSettings[name] ?? {}).map((s) =>
        driverSettingVariable(name, s),
      );
      throw new PolydevError(
        "invalid_request",
        `${variables.join(", ")} set${variables.length === 1 ? "s" : ""} a setting of "${name}", which is no driver of this build (it has: ${known})`,
      );
    }
  }
  const makers = new Map<string, ConfiguredDriver["make"]>();
  for (const [name, factory] of Object.entries(factories)) {
    makers.set(name, driverMaker(name, factory, config.driverSettings[name] ?? {}));
  }
  return names.map((name) => ({ name, make: makers.get(name) as ConfiguredDriver["make"] }));
}

/** Validates one driver's settings against its schema; answers how to make the driver. */
function driverMaker(
  name: string,
  factory: DriverFactory,
  raw: Record<string, string>,
): ConfiguredDriver["make"] {
  if (typeof factory === "function") {
    const given = Object.keys(raw);
    if (given.length > 0) {
      throw new PolydevError(
        "invalid_request",
        `the ${name} driver takes no settings (got ${given.map((s) => driverSettingVariable(name, s)).join(", ")})`,
      );
    }
    return factory;
  }
  const parsed = factory.settings.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const unknownKeys = issue.code === "unrecognized_keys" ? issue.keys : [];
      if (unknownKeys.length > 0) {
        return `${unknownKeys.map((s) => driverSettingVariable(name, s)).join(", ")}: no such setting of the ${name} driver`;
      }
      const setting = String(issue.path[0] ?? "");
      return `${setting === "" ? `the ${name} driver's settings` : driverSettingVariable(name, setting)}: ${issue.message}`;
    });
    throw new PolydevError("invalid_request", `invalid driver settings: ${problems.join("; ")}`);
  }
  const settings = parsed.data;
  return (options) => factory.create(options, settings);
}

export async function openDrivers(
  config: PolydevConfig,
  factories: Record<string, DriverFactory>,
  log: Logger,
  host: { storage: StoragePool | undefined; toolbox: (() => string | undefined) | undefined },
): Promise<DriverSet> {
  const members: DriverSetMember[] = [];
  for (const { name, make } of configuredDrivers(config, factories)) {
    const driver = make({
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
