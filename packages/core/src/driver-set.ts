/**
 * Several drivers side by side in one server (namespace, gvisor, microvm), behind the one
 * `SandboxDriver` port the services already use: a create goes to the driver its spec names (or
 * the default), everything else to the driver its handle names. Each sandbox's row keeps its
 * driver, so the reconciler asks the driver that made it. A driver's own capabilities stay its
 * own: `featuresOf(name)` answers per driver, never a union.
 */
import type { AgentConnection } from "./agent.js";
import type { DriverInfo, SandboxDriver } from "./driver.js";
import { PolydevError } from "./errors.js";
import type { ObservedSandbox, SandboxHandle, SandboxSpec, SandboxStats } from "./sandbox.js";

export interface DriverSetMember {
  driver: SandboxDriver;
  /** What its probe() answered. */
  info: DriverInfo;
}

export class DriverSet implements SandboxDriver {
  readonly name: string;
  private readonly members = new Map<string, DriverSetMember>();

  /** `defaultName` takes creates whose spec names no driver. */
  constructor(members: DriverSetMember[], defaultName: string) {
    for (const member of members) {
      if (this.members.has(member.driver.name)) {
        throw new PolydevError("invalid_request", `two drivers are named "${member.driver.name}"`);
      }
      this.members.set(member.driver.name, member);
    }
    if (!this.members.has(defaultName)) {
      throw new PolydevError(
        "invalid_request",
        `the default driver "${defaultName}" is not among the drivers: ${[...this.members.keys()].join(", ")}`,
      );
    }
    this.name = defaultName;
  }

  /** The drivers this server runs, the default first. */
  names(): string[] {
    return [this.name, ...[...this.members.keys()].filter((name) => name !== this.name)];
  }

  has(name: string): boolean {
    return this.members.has(name);
  }

  featuresOf(name: string): readonly string[] {
    return this.member(name).info.features;
  }

  /** The member itself, for what only one driver has (the default one's warm pools, say). */
  driver(name: string): SandboxDriver {
    return this.member(name).driver;
  }

  /** Every member was probed before it joined: this answers the default's. */
  async probe(): Promise<DriverInfo> {
    return this.member(this.name).info;
  }

  create(spec: SandboxSpec, signal?: AbortSignal): Promise<SandboxHandle> {
    return this.member(spec.driver ?? this.name).driver.create(spec, signal);
  }

  connect(handle: SandboxHandle, signal?: AbortSignal): Promise<AgentConnection> {
    return this.of(handle).connect(handle, signal);
  }

  hibernate(handle: SandboxHandle, signal?: AbortSignal): Promise<void> {
    return this.of(handle).hibernate(handle, signal);
  }

  resume(handle: SandboxHandle, signal?: AbortSignal): Promise<void> {
    return this.of(handle).resume(handle, signal);
  }

  async stop(handle: SandboxHandle, signal?: AbortSignal): Promise<void> {
    const driver = this.of(handle);
    if (!driver.stop) throw this.lacks(driver, "stop sandboxes");
    await driver.stop(handle, signal);
  }

  async start(handle: SandboxHandle, spec: SandboxSpec, signal?: AbortSignal): Promise<SandboxHandle> {
    const driver = this.of(handle);
    if (!driver.start) throw this.lacks(driver, "start stopped sandboxes");
    return driver.start(handle, spec, signal);
  }

  async growDisk(handle: SandboxHandle, diskMb: number, signal?: AbortSignal): Promise<void> {
    const driver = this.of(handle);
    if (!driver.growDisk) throw this.lacks(driver, "grow disks");
    await driver.growDisk(handle, diskMb, signal);
  }

  async snapshot(handle: SandboxHandle, targetDir: string, signal?: AbortSignal): Promise<void> {
    const driver = this.of(handle);
    if (!driver.snapshot) throw this.lacks(driver, "snapshot sandboxes");
    await driver.snapshot(handle, targetDir, signal);
  }

  async fork(handle: SandboxHandle, specs: SandboxSpec[], signal?: AbortSignal): Promise<SandboxHandle[]> {
    const driver = this.of(handle);
    if (!driver.fork) throw this.lacks(driver, "fork sandboxes");
    return driver.fork(handle, specs, signal);
  }

  async adopt(handle: SandboxHandle, spec: SandboxSpec, signal?: AbortSignal): Promise<SandboxHandle> {
    const driver = this.of(handle);
    if (!driver.adopt) throw this.lacks(driver, "adopt spares");
    return driver.adopt(handle, spec, signal);
  }

  destroy(handle: SandboxHandle, signal?: AbortSignal): Promise<void> {
    return this.of(handle).destroy(handle, signal);
  }

  /** Every member's sandboxes; each member lists only its own (its own root directory). */
  async list(signal?: AbortSignal): Promise<ObservedSandbox[]> {
    const lists = await Promise.all([...this.members.values()].map(({ driver }) => driver.list(signal)));
    return lists.flat();
  }

  isAlive(handle: SandboxHandle, signal?: AbortSignal): Promise<boolean> {
    return this.of(handle).isAlive(handle, signal);
  }

  stats(handle: SandboxHandle, signal?: AbortSignal): Promise<SandboxStats> {
    return this.of(handle).stats(handle, signal);
  }

  logs(handle: SandboxHandle, signal?: AbortSignal): Promise<string> {
    return this.of(handle).logs(handle, signal);
  }

  private of(handle: SandboxHandle): SandboxDriver {
    return this.member(handle.driver).driver;
  }

  private member(name: string): DriverSetMember {
    const member = this.members.get(name);
    if (!member) {
      throw new PolydevError(
        "driver_unavailable",
        `the "${name}" driver is not running on this server; it runs: ${this.names().join(", ")}`,
        { details: { driver: name, drivers: this.names() } },
      );
    }
    return member;
  }

  private lacks(driver: SandboxDriver, what: string): PolydevError {
    return new PolydevError("feature_unavailable", `the "${driver.name}" driver cannot ${what}`, {
      details: { driver: driver.name },
    });
  }
}
