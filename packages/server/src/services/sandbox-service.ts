/**
 * Sandbox lifecycle. Every state change is written to the store (compare-and-set) before the
 * driver is asked to act, so a crash at any point leaves a row the reconciler can finish; a
 * driver that fails to act is rolled back or the sandbox marked failed with the reason. The
 * lifecycle operations of one sandbox (hibernate, resume, destroy) run one at a time in this
 * process, so a resume cannot thaw a sandbox while a hibernate is freezing it.
 */
import { join } from "node:path";
import type {
  AgentConnection,
  Clock,
  DriverSet,
  ImageRecord,
  NewSandbox,
  SandboxHandle,
  SandboxImage,
  SandboxRecord,
  SandboxSpec,
  SandboxState,
  Store,
} from "@polydev/core";
import { isPolydevError, notFound, PolydevError } from "@polydev/core";
import type { Logger } from "pino";
import type { PolydevConfig } from "../config.js";
import { newId } from "./api-keys.js";
import type { GatewayHub } from "./gateway-hub.js";
import { gatewayEnv } from "./gateway-hub.js";
import { KeyedLock } from "./keyed-lock.js";
import type { NetworkInput, NetworkPolicies } from "./network-policies.js";
import { policyOf } from "./network-policies.js";
import type { WarmPools } from "./warm-pools.js";

/** Which network modes need which driver feature (as `probe()` reports them). */
const MODE_FEATURES: Record<string, string> = { egress: "egress", allowlist: "egress-allowlist" };

/** States in which a sandbox holds a disk the lifecycle operations can act on. */
const HOLDS_DISK: SandboxState[] = ["running", "hibernated", "stopped"];

export interface CreateSandboxInput {
  name?: string | undefined;
  /** An image of the store by name; default the server's default image (config images.defaultImage). */
  image?: string | undefined;
  /** The driver by name (GET /healthz lists them); default the server's default driver. */
  driver?: string | undefined;
  cpu?: number | undefined;
  memoryMb?: number | undefined;
  diskMb?: number | undefined;
  pidsMax?: number | undefined;
  network?: NetworkInput | undefined;
  timeoutMs?: number | undefined;
  idleTimeoutMs?: number | undefined;
  env?: Record<string, string> | undefined;
  metadata?: Record<string, string> | undefined;
}

/** What the sandbox service asks of the image store. */
export interface SandboxImages {
  toSandboxImage(userId: string, name: string): Promise<SandboxImage>;
  sandboxImageByDigest(digest: string): Promise<SandboxImage>;
  registerSnapshot(
    userId: string,
    name: string,
    snapshot: { parentDigest: string; take: (targetDir: string) => Promise<string> },
  ): Promise<ImageRecord>;
}

/** The hard TTL of a durable sandbox created without one: in practice none. */
const DURABLE_TIMEOUT_MS = 10 * 365 * 24 * 60 * 60 * 1000;

/** Room a disk needs beyond its image's files: the smallest disk the storage pool makes. */
const MIN_CHANGES_MB = 16;

/** A disk holds the image's files and the sandbox's changes: one smaller than the image is refused. */
function checkDiskHoldsImage(diskMb: number, image: SandboxImage | undefined): void {
  if (image?.sizeBytes === undefined) return;
  const needMb = Math.ceil(image.sizeBytes / 2 ** 20) + MIN_CHANGES_MB;
  if (diskMb < needMb) {
    throw new PolydevError(
      "invalid_request",
      `diskMb ${diskMb} cannot hold image ${image.name} (${Math.ceil(image.sizeBytes / 2 ** 20)} MB of files); ask for at least ${needMb}`,
      { details: { field: "diskMb", minimum: needMb } },
    );
  }
}

/** Activity is written at most this often per sandbox: the idle timeout is minutes, not ms. */
const ACTIVITY_WRITE_EVERY_MS = 5_000;
/**
 * How long a running sandbox's row is reused by the requests that need it running (exec, files,
 * PTY) instead of being read again. Every state change this process makes drops it at once, so
 * here a destroyed or hibernated sandbox is refused immediately; the TTL only bounds how long a
 * change made by another server replica goes unseen.
 */
const RUNNING_CACHE_MS = 1_000;

/** What new sandboxes would hold: checked against the owner's plan before their rows are written. */
export interface SandboxDemand {
  count: number;
  cpu: number;
  memoryMb: number;
  diskMb: number;
}
export type SandboxAdmission = (userId: string, demand: SandboxDemand) => Promise<void>;
/** Runs a user's admission and the insert it admits as one, across every replica. */
export type AdmissionLock = <T>(userId: string, work: () => Promise<T>) => Promise<T>;

export class SandboxService {
  private readonly connections = new Map<string, Promise<AgentConnection>>();
  private readonly lastActivityWrite = new Map<string, number>();
  private readonly runningCache = new Map<string, { record: SandboxRecord; until: number }>();
  /** Bumped whenever a cached row is dropped: a read that raced a drop is not cached. */
  private stateChanges = 0;
  private readonly endListeners: ((sandboxId: string) => void)[] = [];
  private readonly startListeners: ((sandbox: SandboxRecord) => Promise<void>)[] = [];
  private readonly lifecycle = new KeyedLock();
  private admission: SandboxAdmission | undefined;
  private admissionLock: AdmissionLock = (_userId, work) => work();
  /** Per user: a quota check and the insert it admits run together, so two creates cannot both pass. */
  private readonly admissions = new KeyedLock();
  private images: SandboxImages | undefined;
  private defaultImage = "";
  /** Images by digest: a digest names the same layers forever, and a sandbox keeps its image alive. */
  private readonly imagesByDigest = new Map<string, SandboxImage>();

  constructor(
    private readonly config: PolydevConfig,
    private readonly store: Store,
    private readonly driver: DriverSet,
    private readonly log: Logger,
    private readonly clock: Clock,
    private readonly networks: NetworkPolicies,
    private readonly gateway?: GatewayHub,
  ) {}

  /** What the default driver reported at start-up (`probe()`), shown by GET /healthz. */
  get features(): readonly string[] {
    return this.driver.featuresOf(this.driver.name);
  }

  /** Every driver this server runs, the default first, with what each reported. */
  get drivers(): { name: string; features: readonly string[]; default: boolean }[] {
    return this.driver.names().map((name) => ({
      name,
      features: this.driver.featuresOf(name),
      default: name === this.driver.name,
    }));
  }

  /** Whether a driver keeps disks across stop and start ("durable"; default: the default driver). */
  durable(driverName = this.driver.name): boolean {
    const member = this.driver.driver(driverName);
    return this.driver.featuresOf(driverName).includes("durable") && !!member.stop && !!member.start;
  }

  /** Whether any driver of this server keeps disks (the reconciler then reads what is on the host). */
  anyDurable(): boolean {
    return this.driver.names().some((name) => this.durable(name));
  }

  private requireFeature(driverName: string, feature: string, what: string): void {
    if (!this.driver.featuresOf(driverName).includes(feature)) {
      throw new PolydevError(
        "feature_unavailable",
        `the "${driverName}" driver on this server cannot ${what} (it lacks the "${feature}" feature; ` +
          "see GET /healthz and the server log for what each driver offers)",
        { details: { feature, driver: driverName } },
      );
    }
  }

  /** Refuses `count` more sandboxes when the user would pass their limit (stopped ones count). */
  private async checkSandboxLimit(userId: string, count: number): Promise<void> {
    const live = await this.store.sandboxes.countLiveForUser(userId);
    if (live + count > this.config.maxSandboxesPerUser) {
      const asked = count === 1 ? "" : ` and asked for ${count} more`;
      throw new PolydevError(
        "limit_exceeded",
        `you already have ${live} live or stopped sandboxes${asked} (limit ${this.config.maxSandboxesPerUser}); destroy some first`,
      );
    }
  }

  /** A name another of the user's sandboxes holds answers 409 `name_taken`, before any insert. */
  private async checkNamesFree(userId: string, names: readonly string[]): Promise<void> {
    for (const name of names) {
      const holder = await this.store.sandboxes.getForUserByName(userId, name);
      if (holder) throw nameTaken(name, holder.id);
    }
  }

  /**
   * Driver sandboxes this server made without a row (a Dockerfile step's, a warm pool's spare):
   * the reconciler leaves them alone while they are held; after a crash they are orphans.
   */
  private readonly held = new Set<string>();

  hold(sandboxId: string): void {
    this.held.add(sandboxId);
  }

  release(sandboxId: string): void {
    this.held.delete(sandboxId);
  }

  isHeld(sandboxId: string): boolean {
    return this.held.has(sandboxId);
  }

  /** The image store, once it is open, and the image a create without one starts from. */
  useImages(images: SandboxImages, defaultImage: string): void {
    this.images = images;
    this.defaultImage = defaultImage;
  }

  private pools: WarmPools | undefined;

  /** Warm pools a matching create claims from (see WarmPools). */
  /** Quotas: called before a create's or fork's rows are written; throwing refuses them. */
  useAdmission(admission: SandboxAdmission, lock?: AdmissionLock): void {
    this.admission = admission;
    if (lock) this.admissionLock = lock;
  }

  private admit<T>(userId: string, demand: SandboxDemand, insert: () => Promise<T>): Promise<T> {
    const admission = this.admission;
    if (!admission) return insert();
    // In this process first (no bus round trips for creates queued here), then across replicas.
    return this.admissions.run(userId, () =>
      this.admissionLock(userId, async () => {
        await admission(userId, demand);
        return insert();
      }),
    );
  }

  useWarmPools(pools: WarmPools): void {
    this.pools = pools;
  }

  /**
   * The image a create asked for, or the default one; undefined for a host-view sandbox (no
   * image asked for and none configured, or a driver without images).
   */
  private async imageFor(
    userId: string,
    asked: string | undefined,
    driverName: string,
  ): Promise<SandboxImage | undefined> {
    const images = this.driver.featuresOf(driverName).includes("images");
    const name = asked ?? (images ? this.defaultImage : "");
    if (name === "") return undefined;
    if (this.images === undefined || !images) {
      throw new PolydevError(
        "feature_unavailable",
        `this server cannot start sandboxes from images (its "${driverName}" driver or host lacks the storage pool; see GET /healthz and the server log)`,
        { details: { feature: "images", driver: driverName } },
      );
    }
    const image = await this.images.toSandboxImage(userId, name);
    this.imagesByDigest.set(image.digest, image);
    return image;
  }

  private async imageByDigest(digest: string): Promise<SandboxImage> {
    const known = this.imagesByDigest.get(digest);
    if (known) return known;
    if (this.images === undefined) {
      throw new PolydevError(
        "feature_unavailable",
        `the image store is not open, and sandboxes of image ${digest} need it`,
      );
    }
    const image = await this.images.sandboxImageByDigest(digest);
    this.imagesByDigest.set(digest, image);
    return image;
  }

  /**
   * What the driver is given for a sandbox: its stored limits, network and environment, plus a
   * fresh gateway placeholder (placeholders are stored hashed, so each start gets its own).
   */
  private async specOf(record: SandboxRecord): Promise<SandboxSpec> {
    const placeholder = await this.gateway?.issuePlaceholder(record.userId, record.id, this.clock.now());
    const env =
      this.gateway && placeholder
        ? { ...gatewayEnv(this.gateway.port, placeholder), ...record.env }
        : record.env;
    return {
      id: record.id,
      limits: { cpu: record.cpu, memoryMb: record.memoryMb, diskMb: record.diskMb, pidsMax: record.pidsMax },
      network: record.network,
      env,
      driver: record.driver,
      ...(record.image ? { image: await this.imageByDigest(record.image) } : {}),
    };
  }

  async create(userId: string, input: CreateSandboxInput): Promise<SandboxRecord> {
    const defaults = this.config.sandboxDefaults;
    const driverName = input.driver ?? this.driver.name;
    if (!this.driver.has(driverName)) {
      throw new PolydevError(
        "invalid_request",
        `this server has no "${driverName}" driver; it runs: ${this.driver.names().join(", ")}`,
        { details: { field: "driver", drivers: this.driver.names() } },
      );
    }
    await this.checkSandboxLimit(userId, 1);
    if (input.name !== undefined) await this.checkNamesFree(userId, [input.name]);
    const network = await this.networks.choose(userId, input.network);
    const feature = MODE_FEATURES[network.mode];
    if (feature && !this.driver.featuresOf(driverName).includes(feature)) {
      throw new PolydevError(
        "feature_unavailable",
        `the "${driverName}" driver on this server cannot give a sandbox network "${network.mode}" ` +
          `(it lacks the "${feature}" feature; see GET /healthz and the server log for what to install)`,
        { details: { feature, driver: driverName } },
      );
    }
    const image = await this.imageFor(userId, input.image, driverName);
    const diskMb = input.diskMb ?? defaults.diskMb;
    checkDiskHoldsImage(diskMb, image);
    const limits = {
      cpu: input.cpu ?? defaults.cpu,
      memoryMb: input.memoryMb ?? defaults.memoryMb,
      diskMb,
      pidsMax: input.pidsMax ?? defaults.pidsMax,
    };
    // The fast path: a spare started ahead of time, which only needs its row and environment.
    // Warm pools hold the default driver's sandboxes.
    const spare =
      image !== undefined &&
      driverName === this.driver.name &&
      this.pools?.serves(image.name, limits, network.mode)
        ? this.pools.take(image.name, image.digest)
        : undefined;
    const now = this.clock.now();
    // A sandbox with a disk of its own is meant to last: no hard TTL unless asked for (its idle
    // timeout stops it, and the inactivity period destroys it once stopped long enough).
    const timeoutMs =
      input.timeoutMs ??
      (image !== undefined && this.durable(driverName) ? DURABLE_TIMEOUT_MS : defaults.timeoutMs);
    let record: SandboxRecord;
    try {
      record = await this.admit(userId, { count: 1, ...limits }, () =>
        this.insertNamed({
          id: spare?.sandboxId ?? newId("sbx"),
          userId,
          name: input.name ?? null,
          image: image?.digest ?? null,
          state: "creating",
          driver: driverName,
          ...limits,
          network: network.mode,
          egressPolicy: policyOf(network),
          env: input.env ?? {},
          metadata: input.metadata ?? {},
          timeoutMs,
          idleTimeoutMs: input.idleTimeoutMs ?? defaults.idleTimeoutMs,
          createdAt: now,
          expiresAt: now + timeoutMs,
        }),
      );
    } catch (error) {
      if (spare) await this.driver.destroy(spare).catch(() => undefined);
      throw error;
    } finally {
      // From here the row speaks for it (or it is gone).
      if (spare) this.release(spare.sandboxId);
    }
    try {
      // Tools inside reach providers only through the gateway, with a placeholder key.
      const spec = await this.specOf(record);
      const handle = spare ? await this.claimSpare(spare, spec) : await this.driver.create(spec);
      await this.store.sandboxes.setHandle(record.id, handle);
      const running = await this.store.sandboxes.transition(record.id, ["creating"], "running", {
        at: this.clock.now(),
      });
      if (!running) {
        // Someone (the reconciler, a DELETE) moved it on while we were creating: honour that.
        await this.driver.destroy(handle).catch(() => undefined);
        throw new PolydevError("conflict", `sandbox ${record.id} was destroyed while it was being created`);
      }
      // Before anyone can use it: e.g. an allow-list sandbox's egress is intercepted from its
      // first process on.
      for (const listener of this.startListeners) await listener(running);
      await this.appendLog(record.id, "info", describeCreation(running, image?.name, spare !== undefined));
      this.log.info({ sandboxId: record.id, userId }, "sandbox created");
      // The agent connection is made while the response travels (after it has been written:
      // setImmediate), so the first exec finds it ready, its row cached and its activity (the
      // creation itself, already in the row) written.
      setImmediate(() => this.agentFor(running).catch(() => undefined));
      this.lastActivityWrite.set(running.id, now);
      this.runningCache.set(running.id, { record: running, until: this.clock.now() + RUNNING_CACHE_MS });
      return running;
    } catch (error) {
      if (isPolydevError(error) && error.code === "conflict") throw error;
      await this.markFailed(record.id, ["creating", "running"], describeFailure(error), error);
      throw new PolydevError(
        "sandbox_failed",
        `sandbox ${record.id} failed to start: ${describeFailure(error)}`,
        {
          details: { sandboxId: record.id, hint: `GET /v1/sandboxes/${record.id}/logs shows why` },
          cause: error,
        },
      );
    }
  }

  /** A spare takes on the create's environment; one that cannot is replaced by a fresh start. */
  private async claimSpare(spare: SandboxHandle, spec: SandboxSpec): Promise<SandboxHandle> {
    try {
      return await this.driver.adopt(spare, spec);
    } catch (error) {
      this.log.warn(
        { err: error, sandboxId: spec.id },
        "a warm pool's spare could not be claimed; starting anew",
      );
      await this.driver.destroy(spare);
      return this.driver.create(spec);
    }
  }

  /**
   * Inserts a row, owned by this node (it hosts the sandbox); the store's unique index on
   * (user, name) decides a race between two creates.
   */
  private async insertNamed(sandbox: NewSandbox): Promise<SandboxRecord> {
    try {
      return await this.store.sandboxes.insert({ ...sandbox, node: this.config.nodeName });
    } catch (error) {
      throw asNameTaken(error, sandbox.name ?? undefined);
    }
  }

  /**
   * The user's sandbox by id (`sbx_…`) or by name: ids always hold a `_`, names never do, so
   * one path segment names exactly one of them.
   */
  async get(userId: string, idOrName: string): Promise<SandboxRecord> {
    const record = idOrName.includes("_")
      ? await this.store.sandboxes.getForUser(userId, idOrName)
      : await this.store.sandboxes.getForUserByName(userId, idOrName);
    if (!record) throw notFound("sandbox", idOrName);
    return record;
  }

  /** The sandbox, ready for work: hibernated ones are resumed, others answer 409. */
  async requireRunning(userId: string, id: string): Promise<SandboxRecord> {
    const cached = this.runningCache.get(id);
    if (cached && cached.record.userId === userId && cached.until > this.clock.now()) {
      this.touch(id);
      return cached.record;
    }
    const changesBefore = this.stateChanges;
    let record = await this.get(userId, id);
    // A hibernate, resume, stop, start or destroy under way: its row is written but its act may
    // not be done, so the row is read again once it is.
    if (this.lifecycle.busy(record.id)) {
      await this.lifecycle.idle(record.id);
      record = await this.get(userId, record.id);
    }
    if (record.state === "hibernated") record = await this.resume(userId, record.id);
    // Opening a terminal, an exec, a file operation or a run brings a stopped sandbox back.
    else if (record.state === "stopped") record = await this.start(userId, record.id);
    if (record.state !== "running" || !record.handle) {
      throw new PolydevError(
        "sandbox_not_running",
        `sandbox ${record.id} is ${record.state}${record.failureReason ? ` (${record.failureReason})` : ""}; create a new one`,
      );
    }
    if (this.stateChanges === changesBefore) {
      this.runningCache.set(record.id, { record, until: this.clock.now() + RUNNING_CACHE_MS });
    }
    this.touch(record.id);
    return record;
  }

  /** A (cached) agent connection to a running sandbox owned by the user. */
  async agent(userId: string, id: string): Promise<{ sandbox: SandboxRecord; agent: AgentConnection }> {
    const sandbox = await this.requireRunning(userId, id);
    return { sandbox, agent: await this.agentFor(sandbox) };
  }

  agentFor(sandbox: SandboxRecord): Promise<AgentConnection> {
    const handle = sandbox.handle;
    if (!handle) throw new PolydevError("sandbox_not_running", `sandbox ${sandbox.id} has no driver handle`);
    let connection = this.connections.get(sandbox.id);
    if (!connection) {
      const connecting = this.driver.connect(handle);
      connection = connecting;
      this.connections.set(sandbox.id, connecting);
      // A connection that failed or ended (its sandbox stopped, the agent went away) is dropped,
      // so the next request connects again instead of failing on a dead one.
      const forget = (): void => {
        if (this.connections.get(sandbox.id) === connecting) this.connections.delete(sandbox.id);
      };
      connecting.then((live) => live.closed.then(forget), forget);
    }
    return connection;
  }

  /** Whether the sandbox is still there: its row live and its processes alive on the host. */
  async isAlive(id: string): Promise<boolean> {
    const record = await this.store.sandboxes.get(id);
    if (!record?.handle || (record.state !== "running" && record.state !== "hibernated")) return false;
    return this.driver.isAlive(record.handle).catch(() => false);
  }

  private forgetRunning(id: string): void {
    this.runningCache.delete(id);
    this.stateChanges++;
  }

  /**
   * Called when a sandbox has started (before its create answers, so a failure fails the create)
   * and again for a sandbox found running at start-up or resumed (`announceRunning`); listeners
   * are idempotent.
   */
  onStarted(listener: (sandbox: SandboxRecord) => Promise<void>): void {
    this.startListeners.push(listener);
  }

  /** Runs the start listeners for a sandbox this process found running or resumed. */
  async announceRunning(sandbox: SandboxRecord): Promise<void> {
    for (const listener of this.startListeners) await listener(sandbox);
  }

  /** Called when a sandbox stops for good (destroyed or failed), e.g. to close its terminals. */
  onEnded(listener: (sandboxId: string) => void): void {
    this.endListeners.push(listener);
  }

  /** One listener's failure must not stop the others, nor the destroy that called them. */
  private ended(sandboxId: string): void {
    for (const listener of this.endListeners) {
      try {
        listener(sandboxId);
      } catch (error) {
        this.log.error({ err: error, sandboxId }, "a listener failed on a sandbox's end");
      }
    }
  }

  touch(sandboxId: string): void {
    const now = this.clock.now();
    if ((this.lastActivityWrite.get(sandboxId) ?? 0) + ACTIVITY_WRITE_EVERY_MS > now) return;
    this.lastActivityWrite.set(sandboxId, now);
    this.store.sandboxes.touchActivity(sandboxId, now).catch((error: unknown) => {
      this.log.warn({ err: error, sandboxId }, "could not record sandbox activity");
    });
  }

  /** Written `hibernated` first, then frozen; a failed freeze is rolled back (or the sandbox failed). */
  async hibernate(userId: string, idOrName: string): Promise<SandboxRecord> {
    const id = await this.resolveId(userId, idOrName);
    return this.lifecycle.run(id, async () => {
      this.forgetRunning(id);
      const record = await this.get(userId, id);
      if (record.state === "hibernated") return record;
      const handle = record.handle;
      if (record.state !== "running" || !handle) {
        throw new PolydevError(
          "sandbox_not_running",
          `sandbox ${id} is ${record.state}; only running sandboxes hibernate`,
        );
      }
      const hibernated = await this.store.sandboxes.transition(id, ["running"], "hibernated", {
        at: this.clock.now(),
      });
      this.forgetRunning(id);
      if (!hibernated) throw new PolydevError("conflict", `sandbox ${id} changed state while hibernating`);
      try {
        await this.driver.hibernate(handle);
      } catch (error) {
        await this.undoFailedAct(hibernated, "hibernate", error);
        // A thaw undoes a partial freeze; then the row goes back to what is true again.
        try {
          await this.driver.resume(handle);
        } catch (thawError) {
          const reason = `it could be neither hibernated nor thawed: ${describeFailure(thawError)}`;
          await this.markFailed(id, ["hibernated"], reason, thawError);
          throw new PolydevError("sandbox_failed", `sandbox ${id} failed: ${reason}`, { cause: thawError });
        }
        await this.store.sandboxes.transition(id, ["hibernated"], "running", { at: this.clock.now() });
        this.forgetRunning(id);
        throw new PolydevError(
          "sandbox_failed",
          `sandbox ${id} could not be hibernated (${describeFailure(error)}); it is still running`,
          { cause: error },
        );
      }
      await this.appendLog(id, "info", "hibernated: its processes are frozen, its memory and files kept");
      this.log.info({ sandboxId: id }, "sandbox hibernated");
      return hibernated;
    });
  }

  /** Written `running` first, then thawed; a sandbox that cannot be thawed is failed with the reason. */
  async resume(userId: string, idOrName: string): Promise<SandboxRecord> {
    const id = await this.resolveId(userId, idOrName);
    return this.lifecycle.run(id, async () => {
      const record = await this.get(userId, id);
      if (record.state === "running") return record;
      const handle = record.handle;
      if (record.state !== "hibernated" || !handle) {
        throw new PolydevError(
          "sandbox_not_running",
          `sandbox ${id} is ${record.state}; only hibernated sandboxes resume`,
        );
      }
      const running = await this.store.sandboxes.transition(id, ["hibernated"], "running", {
        at: this.clock.now(),
      });
      this.forgetRunning(id);
      if (!running) throw new PolydevError("conflict", `sandbox ${id} changed state while resuming`);
      try {
        await this.driver.resume(handle);
      } catch (error) {
        await this.undoFailedAct(running, "resume", error);
        // Written running but still frozen is the one state nothing may see: it fails.
        await this.markFailed(id, ["running"], `it could not be resumed: ${describeFailure(error)}`, error);
        throw new PolydevError(
          "sandbox_failed",
          `sandbox ${id} could not be resumed (${describeFailure(error)}); it was marked failed`,
          { details: { sandboxId: id, hint: `GET /v1/sandboxes/${id}/logs shows why` }, cause: error },
        );
      }
      // A restart while it was hibernated left it without what the start listeners set up.
      await this.announceRunning(running).catch((error: unknown) => {
        this.log.warn({ err: error, sandboxId: id }, "a start listener failed on resume");
      });
      await this.appendLog(id, "info", "resumed: its processes go on where they were frozen");
      this.log.info({ sandboxId: id }, "sandbox resumed");
      return running;
    });
  }

  /** The id a path segment names; a name is looked up (and must be the user's). */
  private async resolveId(userId: string, idOrName: string): Promise<string> {
    return idOrName.includes("_") ? idOrName : (await this.get(userId, idOrName)).id;
  }

  /**
   * Written `stopped` first, then every process is ended and the disk kept ("durable" drivers).
   * Stopping a stopped sandbox asks the driver again (its stop is idempotent), which finishes a
   * stop that failed or was interrupted half way.
   */
  async stop(userId: string, idOrName: string): Promise<SandboxRecord> {
    // Ownership first: a foreign id is a 404 whatever the driver can do.
    const record = await this.get(userId, idOrName);
    this.requireDurable(record.driver, "stop a sandbox and keep its disk");
    return this.lifecycle.run(record.id, () => this.stopUnlocked(record.id, "stopped by its owner"));
  }

  /** Stops a sandbox for the server itself (the idle timeout); same rules as `stop`. */
  stopRecord(record: SandboxRecord, reason: string): Promise<SandboxRecord> {
    this.requireDurable(record.driver, "stop a sandbox and keep its disk");
    return this.lifecycle.run(record.id, () => this.stopUnlocked(record.id, reason));
  }

  /**
   * The reconciler's "host reboot" case: a running or hibernated sandbox whose processes are
   * gone becomes stopped. Checked again under the lifecycle lock, so a start that was bringing it
   * up (its row already `running`, its processes not yet there) is never taken for one.
   */
  stopVanished(record: SandboxRecord, reason: string): Promise<SandboxRecord | undefined> {
    this.requireDurable(record.driver, "stop a sandbox and keep its disk");
    return this.lifecycle.run(record.id, async () => {
      const current = await this.store.sandboxes.get(record.id);
      if (!current?.handle || (current.state !== "running" && current.state !== "hibernated"))
        return undefined;
      if (JSON.stringify(current.handle) !== JSON.stringify(record.handle)) return undefined;
      if (await this.driver.isAlive(current.handle).catch(() => false)) return undefined;
      return this.stopUnlocked(record.id, reason);
    });
  }

  /** Whether a lifecycle operation (create aside) is under way for the sandbox in this process. */
  busy(id: string): boolean {
    return this.lifecycle.busy(id);
  }

  private requireDurable(driverName: string, what: string): void {
    this.requireFeature(driverName, "durable", what);
    if (!this.durable(driverName)) {
      throw new PolydevError(
        "feature_unavailable",
        `the "${driverName}" driver reports "durable" but has no stop/start; it cannot ${what}`,
      );
    }
  }

  private async stopUnlocked(id: string, reason: string): Promise<SandboxRecord> {
    this.forgetRunning(id);
    const record = await this.store.sandboxes.get(id);
    if (!record) throw notFound("sandbox", id);
    const handle = record.handle;
    if (!HOLDS_DISK.includes(record.state) || !handle) {
      throw new PolydevError(
        "sandbox_not_running",
        `sandbox ${id} is ${record.state}; only running, hibernated or stopped sandboxes stop`,
      );
    }
    const stopped =
      record.state === "stopped"
        ? record
        : await this.store.sandboxes.transition(id, ["running", "hibernated"], "stopped", {
            at: this.clock.now(),
          });
    this.forgetRunning(id);
    if (!stopped) throw new PolydevError("conflict", `sandbox ${id} changed state while stopping`);
    if (record.state !== "stopped") await this.appendLog(id, "info", `stopping: ${reason}`);
    // Its processes are going: terminals, runs, tunnels and egress interception end with them.
    this.ended(id);
    await this.forgetConnection(id);
    try {
      await this.driver.stop(handle);
    } catch (error) {
      // The row stays `stopped` (the disk is safe either way); asking again finishes the job.
      this.log.warn({ err: error, sandboxId: id }, "the driver could not stop a sandbox");
      throw new PolydevError(
        "sandbox_failed",
        `sandbox ${id} could not be stopped completely (${describeFailure(error)}); stop it again`,
        { details: { sandboxId: id }, cause: error },
      );
    }
    this.lastActivityWrite.delete(id);
    this.log.info({ sandboxId: id, reason }, "sandbox stopped");
    return stopped;
  }

  /**
   * Brings a stopped sandbox back from its disk with its stored spec (a new handle); a running
   * one is returned as is and a hibernated one resumed. Written `running` first: a crash before
   * the driver is done leaves a running row without processes, which the reconciler turns back
   * into `stopped`. A start that fails leaves it `stopped`, its disk untouched.
   */
  async start(userId: string, idOrName: string): Promise<SandboxRecord> {
    const found = await this.get(userId, idOrName);
    if (found.state === "hibernated") return this.resume(userId, found.id);
    if (found.state === "running") return found;
    this.requireDurable(found.driver, "start a stopped sandbox");
    return this.lifecycle.run(found.id, async () => {
      const id = found.id;
      const record = await this.get(userId, id);
      if (record.state === "running") return record;
      const handle = record.handle;
      if (record.state !== "stopped" || !handle) {
        throw new PolydevError(
          "sandbox_not_running",
          `sandbox ${id} is ${record.state}; only stopped sandboxes start${record.state === "hibernated" ? " (resume it)" : ""}`,
        );
      }
      // Running again takes CPU and memory (its disk was counted all along): the plan decides.
      const demand = { count: 1, cpu: record.cpu, memoryMb: record.memoryMb, diskMb: 0 };
      const running = await this.admit(record.userId, demand, () =>
        this.store.sandboxes.transition(id, ["stopped"], "running", { at: this.clock.now() }),
      );
      this.forgetRunning(id);
      if (!running) throw new PolydevError("conflict", `sandbox ${id} changed state while starting`);
      let newHandle: SandboxHandle;
      try {
        newHandle = await this.driver.start(handle, await this.specOf(running));
      } catch (error) {
        await this.store.sandboxes.transition(id, ["running"], "stopped", { at: this.clock.now() });
        this.forgetRunning(id);
        await this.appendLog(id, "error", `start failed: ${describeFailure(error)}`);
        this.log.warn({ err: error, sandboxId: id }, "the driver could not start a sandbox");
        throw new PolydevError(
          "sandbox_failed",
          `sandbox ${id} could not be started (${describeFailure(error)}); it is still stopped with its disk`,
          { details: { sandboxId: id, hint: `GET /v1/sandboxes/${id}/logs shows why` }, cause: error },
        );
      }
      await this.store.sandboxes.setHandle(id, newHandle);
      const started: SandboxRecord = { ...running, handle: newHandle };
      await this.appendLog(id, "info", "started from its disk");
      // Its egress interception and other per-start set-up come back with it.
      await this.announceRunning(started).catch((error: unknown) => {
        this.log.warn({ err: error, sandboxId: id }, "a start listener failed on start");
      });
      this.touch(id);
      this.log.info({ sandboxId: id }, "sandbox started");
      return started;
    });
  }

  /** Grows the disk (running, hibernated or stopped); the stored limit follows the driver. */
  async growDisk(userId: string, idOrName: string, diskMb: number): Promise<SandboxRecord> {
    const found = await this.get(userId, idOrName);
    return this.lifecycle.run(found.id, async () => {
      const record = await this.get(userId, found.id);
      // A shrink is wrong whatever the driver: said first, so the fix is the first thing heard.
      if (diskMb < record.diskMb) {
        throw new PolydevError(
          "invalid_request",
          `diskMb ${diskMb} is smaller than the disk's ${record.diskMb} MiB: disks only grow (shrinking could lose files); ask for ${record.diskMb} or more`,
          { details: { field: "diskMb", currentDiskMb: record.diskMb } },
        );
      }
      if (diskMb === record.diskMb) return record;
      this.requireFeature(record.driver, "durable", "grow a sandbox's disk");
      const handle = record.handle;
      if (!HOLDS_DISK.includes(record.state) || !handle) {
        throw new PolydevError(
          "sandbox_not_running",
          `sandbox ${record.id} is ${record.state}; only running, hibernated or stopped sandboxes have a disk to grow`,
        );
      }
      await this.driver.growDisk(handle, diskMb);
      const grown = await this.store.sandboxes.setDiskMb(record.id, diskMb, this.clock.now());
      this.forgetRunning(record.id);
      await this.appendLog(record.id, "info", `disk grown from ${record.diskMb} to ${diskMb} MiB`);
      return grown ?? { ...record, diskMb };
    });
  }

  /**
   * An image named `name` of the sandbox's disk as it is now (its image's layers plus one of its
   * changes, copied on write), which creates can then start from. The sandbox keeps running.
   */
  async snapshot(userId: string, idOrName: string, name: string): Promise<ImageRecord> {
    const found = await this.get(userId, idOrName);
    return this.lifecycle.run(found.id, async () => {
      const record = await this.get(userId, found.id);
      this.requireFeature(record.driver, "snapshot", "snapshot a sandbox");
      if (this.images === undefined) {
        throw new PolydevError(
          "feature_unavailable",
          "this server has no image store, so a snapshot has nowhere to go",
        );
      }
      if (!record.image) {
        throw new PolydevError(
          "invalid_request",
          `sandbox ${record.id} was not started from an image, so it has no disk to snapshot; create one with "image"`,
        );
      }
      const handle = record.handle;
      if (!HOLDS_DISK.includes(record.state) || !handle) {
        throw new PolydevError(
          "sandbox_not_running",
          `sandbox ${record.id} is ${record.state}; only running, hibernated or stopped sandboxes have a disk to snapshot`,
        );
      }
      const image = await this.images.registerSnapshot(userId, name, {
        parentDigest: record.image,
        take: async (targetDir) => {
          await this.driver.snapshot(handle, targetDir);
          return join(targetDir, "upper");
        },
      });
      await this.appendLog(record.id, "info", `snapshot taken as image ${image.name}`);
      return image;
    });
  }

  /**
   * `count` new sandboxes whose disks start as copy-on-write copies of this one's, taken at one
   * instant by the driver ("fork"). Same owner, limits, network (its allow-list too),
   * environment, metadata and timeouts. All or none: the rows are written together, and if the
   * driver fails every new row is failed with the reason.
   */
  async fork(
    userId: string,
    idOrName: string,
    input: { count: number; names?: string[] | undefined },
  ): Promise<SandboxRecord[]> {
    const { count, names } = input;
    if (names && names.length !== count) {
      throw new PolydevError(
        "invalid_request",
        `names has ${names.length} entries but count is ${count}; give one name per new sandbox or none`,
        { details: { field: "names" } },
      );
    }
    if (names && new Set(names).size !== names.length) {
      throw new PolydevError("invalid_request", "names must be different from each other", {
        details: { field: "names" },
      });
    }
    const source = await this.get(userId, idOrName);
    this.requireFeature(source.driver, "fork", "fork a sandbox");
    return this.lifecycle.run(source.id, async () => {
      const record = await this.get(userId, source.id);
      const handle = record.handle;
      if (!HOLDS_DISK.includes(record.state) || !handle) {
        throw new PolydevError(
          "sandbox_not_running",
          `sandbox ${record.id} is ${record.state}; only running, hibernated or stopped sandboxes fork`,
        );
      }
      await this.checkSandboxLimit(userId, count);
      if (names) await this.checkNamesFree(userId, names);
      const now = this.clock.now();
      const rows: NewSandbox[] = Array.from({ length: count }, (_, i) => ({
        id: newId("sbx"),
        userId,
        name: names?.[i] ?? null,
        image: record.image,
        state: "creating",
        driver: record.driver,
        cpu: record.cpu,
        memoryMb: record.memoryMb,
        diskMb: record.diskMb,
        pidsMax: record.pidsMax,
        network: record.network,
        egressPolicy: record.egressPolicy,
        env: record.env,
        metadata: forkMetadata(record.metadata),
        timeoutMs: record.timeoutMs,
        idleTimeoutMs: record.idleTimeoutMs,
        createdAt: now,
        expiresAt: now + record.timeoutMs,
        // Forks live beside their parent's disk: on this node.
        node: this.config.nodeName,
      }));
      let created: SandboxRecord[];
      try {
        const demand = { count, cpu: record.cpu, memoryMb: record.memoryMb, diskMb: record.diskMb };
        created = await this.admit(userId, demand, () =>
          this.store.transaction(async (tx) => {
            const inserted: SandboxRecord[] = [];
            for (const row of rows) inserted.push(await tx.sandboxes.insert(row));
            return inserted;
          }),
        );
      } catch (error) {
        throw asNameTaken(error, undefined);
      }
      const ids = created.map((c) => c.id);
      let handles: SandboxHandle[];
      try {
        const specs: SandboxSpec[] = [];
        for (const row of created) specs.push(await this.specOf(row));
        handles = await this.driver.fork(handle, specs);
        if (handles.length !== created.length) {
          await Promise.all(handles.map((h) => this.driver.destroy(h).catch(() => undefined)));
          throw new Error(`the driver returned ${handles.length} sandboxes for ${created.length} asked`);
        }
      } catch (error) {
        if (isPolydevError(error) && error.status >= 400 && error.status < 500) {
          // The driver refused this fork before making anything (e.g. a network it cannot fork):
          // the user's request, not a failure. The rows end destroyed and the answer is the 4xx.
          for (const id of ids) {
            await this.store.sandboxes.transition(id, ["creating"], "destroyed", { at: this.clock.now() });
            await this.appendLog(id, "info", `fork of ${record.id} refused: ${error.message}`);
          }
          throw error;
        }
        const reason = `the fork of ${record.id} failed: ${describeFailure(error)}`;
        for (const id of ids) await this.markFailed(id, ["creating"], reason, error);
        throw new PolydevError(
          "sandbox_failed",
          `could not fork sandbox ${record.id}: ${describeFailure(error)}`,
          {
            details: { sandboxId: record.id, failed: ids },
            cause: error,
          },
        );
      }
      const result: SandboxRecord[] = [];
      for (const [i, row] of created.entries()) {
        const forkHandle = handles[i];
        if (!forkHandle) continue;
        await this.store.sandboxes.setHandle(row.id, forkHandle);
        const running = await this.store.sandboxes.transition(row.id, ["creating"], "running", {
          at: this.clock.now(),
        });
        if (!running) {
          await this.driver.destroy(forkHandle).catch(() => undefined);
          continue;
        }
        await this.appendLog(row.id, "info", `forked from ${record.id}`);
        await this.announceRunning(running).catch((error: unknown) => {
          this.log.warn({ err: error, sandboxId: row.id }, "a start listener failed on a fork");
        });
        this.lastActivityWrite.set(row.id, now);
        result.push(running);
      }
      this.log.info({ sandboxId: record.id, forks: result.map((r) => r.id) }, "sandbox forked");
      return result;
    });
  }

  /**
   * A driver that failed to freeze or thaw a sandbox that is gone altogether: the sandbox fails
   * (the reason kept) and the caller hears `sandbox_not_running`. A live one is left to the caller.
   */
  private async undoFailedAct(
    record: SandboxRecord,
    act: "hibernate" | "resume",
    error: unknown,
  ): Promise<void> {
    this.log.warn({ err: error, sandboxId: record.id }, `the driver could not ${act} a sandbox`);
    const alive = record.handle ? await this.driver.isAlive(record.handle).catch(() => false) : false;
    if (alive) return;
    await this.markFailed(record.id, [record.state], "the sandbox's processes are gone", error);
    throw new PolydevError("sandbox_not_running", `sandbox ${record.id} is gone; create a new one`, {
      cause: error,
    });
  }

  /**
   * At start-up, after a crash between writing a hibernate or resume and acting on it: makes the
   * sandbox's frozen state match its row. Both driver calls are idempotent.
   */
  async settleFrozenState(record: SandboxRecord): Promise<void> {
    const handle = record.handle;
    if (!handle) return;
    await this.lifecycle.run(record.id, async () => {
      if (record.state === "hibernated") await this.driver.hibernate(handle);
      else if (record.state === "running") await this.driver.resume(handle);
    });
  }

  /** Idempotent: an already destroyed sandbox stays destroyed. */
  async destroy(userId: string, id: string): Promise<SandboxRecord> {
    const record = await this.get(userId, id);
    return this.destroyRecord(record, "destroyed by its owner");
  }

  destroyRecord(record: SandboxRecord, reason: string): Promise<SandboxRecord> {
    return this.lifecycle.run(record.id, async () => {
      // Read again: a hibernate or resume that held the lock may have moved it on.
      const current = (await this.store.sandboxes.get(record.id)) ?? record;
      return this.destroyUnlocked(current, reason);
    });
  }

  private async destroyUnlocked(record: SandboxRecord, reason: string): Promise<SandboxRecord> {
    this.forgetRunning(record.id);
    if (record.state === "destroyed") return record;
    const now = this.clock.now();
    const destroying =
      record.state === "destroying"
        ? record
        : await this.store.sandboxes.transition(
            record.id,
            ["creating", "running", "hibernated", "stopped", "failed"],
            "destroying",
            {
              at: now,
            },
          );
    this.forgetRunning(record.id);
    if (!destroying) {
      const current = await this.store.sandboxes.get(record.id);
      if (current && current.state !== record.state) return this.destroyUnlocked(current, reason);
      throw new PolydevError("conflict", `sandbox ${record.id} changed state; try again`);
    }
    await this.appendLog(record.id, "info", `destroying: ${reason}`);
    this.ended(record.id);
    await this.forgetConnection(record.id);
    if (destroying.handle) await this.driver.destroy(destroying.handle);
    const destroyed = await this.store.sandboxes.transition(record.id, ["destroying"], "destroyed", {
      at: this.clock.now(),
    });
    this.lastActivityWrite.delete(record.id);
    this.forgetRunning(record.id);
    this.log.info({ sandboxId: record.id, reason }, "sandbox destroyed");
    return destroyed ?? destroying;
  }

  /**
   * Records why a sandbox failed and keeps the driver's console output in the store, then frees
   * its host resources: the logs outlive the processes.
   */
  async markFailed(id: string, from: SandboxState[], reason: string, error?: unknown): Promise<void> {
    this.forgetRunning(id);
    const failed = await this.store.sandboxes.transition(id, from, "failed", {
      at: this.clock.now(),
      failureReason: reason,
    });
    this.forgetRunning(id);
    await this.appendLog(id, "error", `failed: ${reason}`);
    const consoleTail = isPolydevError(error) ? error.details?.consoleTail : undefined;
    if (typeof consoleTail === "string" && consoleTail.length > 0) {
      await this.store.sandboxLogs.append(id, [
        { at: this.clock.now(), level: "error", source: "console", message: consoleTail },
      ]);
    }
    this.ended(id);
    const handle = failed?.handle;
    if (handle) {
      const consoleLog = await this.driver.logs(handle).catch(() => "");
      if (consoleLog) {
        await this.store.sandboxLogs.append(id, [
          { at: this.clock.now(), level: "info", source: "console", message: consoleLog },
        ]);
      }
      await this.forgetConnection(id);
      await this.driver.destroy(handle).catch((destroyError: unknown) => {
        this.log.warn({ err: destroyError, sandboxId: id }, "could not clean up a failed sandbox");
      });
    }
    this.log.warn({ sandboxId: id, reason }, "sandbox failed");
  }

  async appendLog(id: string, level: "info" | "warn" | "error", message: string): Promise<void> {
    await this.store.sandboxLogs.append(id, [{ at: this.clock.now(), level, source: "server", message }]);
  }

  async forgetConnection(id: string): Promise<void> {
    const connection = this.connections.get(id);
    this.connections.delete(id);
    if (connection) await connection.then((c) => c.close()).catch(() => undefined);
  }

  async closeAll(): Promise<void> {
    const ids = [...this.connections.keys()];
    await Promise.all(ids.map((id) => this.forgetConnection(id)));
  }
}

function nameTaken(name: string | undefined, holderId?: string): PolydevError {
  const which = name === undefined ? "one of these names" : `a sandbox named "${name}"`;
  return new PolydevError(
    "name_taken",
    `you already have ${which}; choose another name or destroy that sandbox first`,
    { details: { field: "name", ...(name ? { name } : {}), ...(holderId ? { sandboxId: holderId } : {}) } },
  );
}

/** The store's unique (user, name) index answering for a race the pre-check could not see. */
function asNameTaken(error: unknown, name: string | undefined): unknown {
  if (!isPolydevError(error) || error.code !== "conflict") return error;
  const fields = error.details?.fields;
  if (!Array.isArray(fields) || !fields.includes("name")) return error;
  return nameTaken(name);
}

/**
 * A fork keeps the user's labels, but not the server's mark of a user's default sandbox (runs
 * without a sandbox reuse that one, and it stays one sandbox).
 */
function forkMetadata(metadata: Record<string, string>): Record<string, string> {
  if (metadata.purpose !== "default") return metadata;
  const { purpose: _purpose, ...rest } = metadata;
  return rest;
}

function describeFailure(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}

/** The lifecycle log's first line: what the sandbox was made with. */
function describeCreation(record: SandboxRecord, imageName: string | undefined, fromPool: boolean): string {
  const from = imageName ? `image ${imageName}` : "the host's file system";
  return (
    `created from ${from} with the ${record.driver} driver${fromPool ? " (a warm pool's spare)" : ""}: ` +
    `network ${record.network}, ${record.cpu} CPU, ${record.memoryMb} MiB memory, ${record.diskMb} MiB disk`
  );
}
