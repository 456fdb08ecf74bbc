/**
 * The shared suites create sandboxes without an image; a driver that starts from the image store
 * only (gvisor, microvm) needs one. This gives every spec without an image the test's image
 * (creates and forks) and passes everything else through, optional operations included.
 */
import type { SandboxDriver } from "../driver.js";
import type { SandboxImage, SandboxSpec } from "../sandbox.js";

export function withDefaultImage(driver: SandboxDriver, image: SandboxImage): SandboxDriver {
  const withImage = (spec: SandboxSpec): SandboxSpec =>
    spec.image === undefined ? { ...spec, image } : spec;
  const { stop, start, growDisk, snapshot, fork, adopt } = driver;
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
    ...(stop ? { stop: (handle, signal) => stop.call(driver, handle, signal) } : {}),
    ...(start
      ? { start: (handle, spec, signal) => start.call(driver, handle, withImage(spec), signal) }
      : {}),
    ...(growDisk
      ? { growDisk: (handle, diskMb, signal) => growDisk.call(driver, handle, diskMb, signal) }
      : {}),
    ...(snapshot ? { snapshot: (handle, dir, signal) => snapshot.call(driver, handle, dir, signal) } : {}),
    ...(fork
      ? { fork: (handle, specs, signal) => fork.call(driver, handle, specs.map(withImage), signal) }
      : {}),
    ...(adopt
      ? { adopt: (handle, spec, signal) => adopt.call(driver, handle, withImage(spec), signal) }
      : {}),
  };
}
