/**
 * The shared suites create sandboxes without an image; a microvm sandbox needs one. This gives
 * every spec without an image the test's image, and passes everything else through.
 */
import type { SandboxDriver, SandboxImage, SandboxSpec } from "@polydev/core";

export function withDefaultImage(driver: SandboxDriver, image: SandboxImage): SandboxDriver {
  const withImage = (spec: SandboxSpec): SandboxSpec =>
    spec.image === undefined ? { ...spec, image } : spec;
  return {
    name: driver.name,
    probe: (signal) => driver.probe(signal),
    create: (spec, signal) => driver.create(withImage(spec), signal),
    connect: (handle, signal) => driver.connect(handle, signal),
    hibernate: (handle, signal) => driver.hibernate(handle, signal),
    resume: (handle, signal) => driver.resume(handle, signal),
    destroy: (handle, signal) => driver.destroy(handle, signal),
    list: (signal) => driver.list(signal),
    isAlive: (handle, signal) => driver.isAlive(handle, signal),
    stats: (handle, signal) => driver.stats(handle, signal),
    logs: (handle, signal) => driver.logs(handle, signal),
  };
}
