/**
 * The namespace driver's operator settings, from POLYDEV_DRIVER_NAMESPACE_<SETTING> (strings,
 * checked at start-up by the server).
 */
import { z } from "zod";

export const namespaceDriverSettings = z
  .object({
    /**
     * POLYDEV_DRIVER_NAMESPACE_TUNE_HOST_CGROUPS (or POLYDEV_TUNE_HOST_CGROUPS): let the driver
     * remount the host's cgroup2 hierarchy with `favordynmods` (faster creates, slightly dearer
     * forks host-wide). Default true.
     */
    tuneHostCgroups: z
      .enum(["true", "false", "1", "0"], "must be true or false")
      .default("true")
      .transform((value) => value === "true" || value === "1"),
  })
  .strict();

export type NamespaceDriverSettings = z.output<typeof namespaceDriverSettings>;
