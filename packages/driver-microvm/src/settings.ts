/**
 * The microvm driver's operator settings, from POLYDEV_DRIVER_MICROVM_<SETTING> (strings, checked
 * at start-up by the server).
 */
import { z } from "zod";

export const microvmDriverSettings = z
  .object({
    /**
     * "tcg" (software; any host) or "kvm". Not probed: a paravirtual /dev/kvm makes stock guest
     * kernels die, so KVM is the operator's explicit choice on a host where it is real.
     */
    accel: z.enum(["tcg", "kvm"]).default("tcg"),
    /** Shared host cache of kernels, initramfs, root disks and boot snapshots. */
    cacheDir: z.string().startsWith("/", "must be an absolute path").optional(),
    /** How long the template's first boot of an image may take. */
    bootTimeoutMs: z.coerce.number().int().min(1000).max(1_800_000).optional(),
    /** How long a restore may take to the agent's answer. */
    readyTimeoutMs: z.coerce.number().int().min(1000).max(600_000).optional(),
    /**
     * The host cache's size in MiB: past it, the entries used least recently (and not by a
     * sandbox of this server) are removed. Default 20480.
     */
    cacheMaxMb: z.coerce
      .number()
      .int()
      .min(1024)
      .max(16 * 1024 * 1024)
      .optional(),
  })
  .strict();

export type MicrovmDriverSettings = z.output<typeof microvmDriverSettings>;
