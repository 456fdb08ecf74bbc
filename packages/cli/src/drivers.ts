/** The drivers this build of Polydev ships, by the name `POLYDEV_DRIVER` selects. */
import { NamespaceDriver } from "@polydev/driver-namespace";
import type { DriverFactory } from "@polydev/server";

export const DRIVERS: Record<string, DriverFactory> = {
  namespace: ({ rootDir, log }) => new NamespaceDriver({ rootDir, log }),
};
