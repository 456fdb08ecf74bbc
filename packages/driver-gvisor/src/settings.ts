/**
 * The gvisor driver's operator settings, from POLYDEV_DRIVER_GVISOR_<SETTING> (strings, checked
 * at start-up by the server): POLYDEV_DRIVER_GVISOR_PLATFORM=systrap, …_RUNSC_PATH,
 * …_MEMORY_OVERHEAD_MB, …_READY_TIMEOUT_MS.
 */
import { z } from "zod";

export const gvisorDriverSettings = z
  .object({
    /** gVisor's platform: ptrace works in any VM; systrap and kvm are faster where runsc has them. */
    platform: z.enum(["ptrace", "systrap", "kvm"]).default("ptrace"),
    /** The runsc binary (absolute path); default Debian's /usr/bin/runsc. */
    runscPath: z.string().startsWith("/", "must be an absolute path").optional(),
    /** Host memory per sandbox on top of its memoryMb, for the Sentry, gofer and agent. */
    memoryOverheadMb: z.coerce.number().int().min(32).max(4096).optional(),
    /** How long a create waits for the sandbox's agent. */
    readyTimeoutMs: z.coerce.number().int().min(1000).max(600_000).optional(),
  })
  .strict();

export type GvisorDriverSettings = z.output<typeof gvisorDriverSettings>;
