/**
 * Composition root of a running server: data directory, store, driver, reconciler, HTTP.
 * The driver is chosen by name from the factories the entry point hands in, so adding a
 * driver never edits the server.
 */
import { createHmac } from "node:crypto";
import { hostname } from "node:os";
import { join } from "node:path";
import type { Bus, Clock, DriverSet, SandboxDriver, SandboxRecord, Store } from "@polydev/core";
import { systemClock } from "@polydev/core";
import type { StoragePool } from "@polydev/images";
import { CLI_RUNNERS } from "@polydev/runners";
import { EnvelopeVault, loadKeyring } from "@polydev/vault";
import type { FastifyInstance } from "fastify";
import type { Logger } from "pino";
import type { ZodType } from "zod";
import { buildApp } from "./app.js";
import type { PolydevConfig } from "./config.js";
import { createLogger } from "./logger.js";
import { newId } from "./services/api-keys.js";
import { AuditLog } from "./services/audit-log.js";
import { bootstrapAdmin, prepareDataDir } from "./services/bootstrap.js";
import { BrowserSessions } from "./services/browser-sessions.js";
import { CredentialService } from "./services/credential-service.js";
import { failDeadNodes } from "./services/dead-nodes.js";
import { EgressHub } from "./services/egress-hub.js";
import { EventHub } from "./services/event-hub.js";
import { GatewayHub } from "./services/gateway-hub.js";
import { GitAccess } from "./services/git-access.js";
import { GitCredentials } from "./services/git-credentials.js";
import { openHostImages } from "./services/host-images.js";
import type { BuildBase, ImageStorage, RunStep } from "./services/image-ports.js";
import type { ImageLimits } from "./services/image-service.js";
import { BASE_IMAGE_NAME, ImageService } from "./services/image-service.js";
import { KeepService } from "./services/keep-service.js";
import type { LoginFlow, LoginProvider } from "./services/login-flows.js";
import { DEFAULT_LOGIN_FLOWS } from "./services/login-flows.js";
import { LoginService } from "./services/login-service.js";
import { McpServerService } from "./services/mcp-servers.js";
import { Metrics } from "./services/metrics.js";
import { serveMetrics } from "./services/metrics-listener.js";
import { NetworkPolicies } from "./services/network-policies.js";
import { NodeRegistry } from "./services/nodes.js";
import { DEFAULT_OAUTH_CLIENTS } from "./services/oauth-refresh.js";
import { observeStore } from "./services/observed-store.js";
import { openConfiguredBus } from "./services/open-bus.js";
import { configuredDrivers, openDrivers } from "./services/open-drivers.js";
import { openConfiguredStore } from "./services/open-store.js";
import { poolImageStorage } from "./services/pool-image-storage.js";
import { Quotas } from "./services/quotas.js";
import { remotePortTarget } from "./services/remote-ports.js";
import { RunService } from "./services/run-service.js";
import { sandboxRunStep } from "./services/sandbox-run-step.js";
import { reportStoreChanges } from "./services/store-reports.js";
import { WarmPools } from "./services/warm-pools.js";
import { WebhookService } from "./services/webhooks.js";

/** The vault's master keys when POLYDEV_MASTER_KEY is not set (mode 600). */
export const MASTER_KEY_FILE = "master-keys.json";

import type { JobRunner } from "./services/jobs.js";
import { OidcUsers } from "./services/oidc-users.js";
import { DEFAULT_OIDC_LIMITS, OidcVerifier } from "./services/oidc-verifier.js";
import { periodicJobs, STALE_LOGINS_JOB } from "./services/periodic-jobs.js";
import { loadPreviewSecret, PreviewLinks } from "./services/preview-links.js";
import { type PreviewListener, servePreviews } from "./services/preview-listener.js";
import { PreviewService } from "./services/preview-service.js";
import { PtySessions } from "./services/pty-sessions.js";
import { Reconciler } from "./services/reconciler.js";
import { SandboxService } from "./services/sandbox-service.js";
import { SignInThrottle } from "./services/sign-in-throttle.js";
import { BusSignInThrottle } from "./services/sign-in-throttle-bus.js";

export interface DriverFactoryOptions {
  /** Where the driver keeps per-sandbox state on this host. */
  rootDir: string;
  /** Where host uids are claimed host-wide (config `hostUidRegistryDir`). */
  hostUidRegistryDir: string;
  log: Logger;
  /** The storage pool for image layers and sandbox disks (absent: images are off on this host). */
  storage?: StoragePool | undefined;
  /** The toolbox for /opt/polydev, once built. */
  toolbox?: (() => string | undefined) | undefined;
}
/**
 * A driver the entry point registers under a name: its own settings schema (zod, over the
 * strings of POLYDEV_DRIVER_<NAME>_<SETTING>, camel-cased) and how to make it from them. Adding
 * a driver is a new registration; no server file changes.
 */
export interface DriverRegistration<Settings = unknown> {
  settings: ZodType<Settings>;
  create(options: DriverFactoryOptions, settings: Settings): SandboxDriver;
}
/** Types a registration's `create` by its schema (what `satisfies` cannot infer). */
export function defineDriver<Settings>(
  registration: DriverRegistration<Settings>,
): DriverRegistration<Settings> {
  return registration;
}
/**
 * A registration, or just a maker for a driver that takes no settings. (A registration of any
 * settings type fits: `create` is a method, so its parameter is checked both ways.)
 */
export type DriverFactory = ((options: DriverFactoryOptions) => SandboxDriver) | DriverRegistration;

/** A Dockerfile RUN step's sandbox: enough for compilers and package installs. */
const BUILD_STEP_LIMITS = { memoryMb: 2048, diskMb: 16 * 1024, pidsMax: 1024 } as const;

/** The image store's ports on this host. */
export interface ImageStorePorts {
  storage: ImageStorage;
  buildBase?: BuildBase | undefined;
  runStep?: RunStep | undefined;
  limits?: Partial<ImageLimits> | undefined;
  /** Registries spoken to over plain http (`host:port`). */
  insecureRegistries?: string[] | undefined;
  /** Registries pulls may reach on private or loopback addresses (`host` or `host:port`). */
  privateRegistries?: string[] | undefined;
}
export type ImageStoreFactory = (options: { dataDir: string; log: Logger }) => ImageStorePorts;

export interface StartOptions {
  drivers: Record<string, DriverFactory>;
  /** The image store's storage and runners; without it the image routes answer feature_unavailable. */
  images?: ImageStoreFactory;
  /** Replaces the CLI login commands (tests use a stand-in CLI). */
  loginFlows?: Record<LoginProvider, LoginFlow>;
  log?: Logger;
  clock?: Clock;
  /**
   * Log unhandled rejections and uncaught exceptions instead of dying silently (default true).
   * In-process test servers turn it off and leave such errors to the test runner, which fails on them.
   */
  processSafetyNet?: boolean;
}

export interface RunningServer {
  url: string;
  credentials: CredentialService;
  app: FastifyInstance;
  store: Store;
  /** Events, locks and counters: in-process, or Redis when `redisUrl` is set. */
  bus: Bus;
  /** Every driver this server runs, routing each sandbox to its own. */
  driver: DriverSet;
  reconciler: Reconciler;
  /** The periodic work (reconcile, pruning, credential checks) and its recorded runs. */
  jobs: JobRunner;
  /** The image store, when the server was started with one. */
  images: ImageService | undefined;
  /** The storage pool (mounted while the host runs; tests unmount it with `close`). */
  storage: StoragePool | undefined;
  /** The unauthenticated metrics listener's base URL, when `metricsListen` is set. */
  metricsUrl: string | undefined;
  /** The preview origin's listener (browsers open previews there), unless it is off. */
  previewUrl: string | undefined;
  /** Set on the first start only: the admin key that was just created. */
  firstAdminKey: { apiKey: string; keyFile: string } | undefined;
  close(): Promise<void>;
}

export async function startServer(config: PolydevConfig, options: StartOptions): Promise<RunningServer> {
  const log = options.log ?? createLogger(config.logLevel);
  const clock = options.clock ?? systemClock;
  configuredDrivers(config, options.drivers);
  const removeSafetyNet = options.processSafetyNet === false ? () => undefined : installProcessSafetyNet(log);
  await prepareDataDir(config.dataDir);
  const hostImages = await openHostImages(config, log.child({ component: "images" }));
  const driver = await openDrivers(config, options.drivers, log, {
    storage: hostImages?.pool,
    toolbox: hostImages?.toolbox,
  });
  const info = await driver.probe();

  const plainStore = await openConfiguredStore(config, log.child({ component: "store" }));
  // Carries the event stream; the other services move onto it in the replica step. A bad
  // POLYDEV_REDIS_URL stops the start instead of a later request.
  const bus = await openConfiguredBus(config, log.child({ component: "bus" })).catch(
    async (error: unknown) => {
      await plainStore.close();
      throw error;
    },
  );
  const metrics = new Metrics();
  const events = new EventHub(bus, config.events, log.child({ component: "events" }), () => clock.now());
  const keyFile = join(config.dataDir, MASTER_KEY_FILE);
  const loadKeys = () => loadKeyring({ envKey: config.masterKey, keyFile });
  const vault = new EnvelopeVault(await loadKeys(), loadKeys);
  // Reads and queues through the plain store: it only ever adds delivery rows.
  const webhooks = new WebhookService(
    plainStore,
    vault,
    config.webhooks,
    log.child({ component: "webhooks" }),
    () => clock.now(),
  );
  // Every state change passes through the store: metrics and events are reported from there.
  const store = observeStore(
    plainStore,
    reportStoreChanges(metrics, events, webhooks),
    log.child({ component: "store-observer" }),
  );
  metrics.observeStore(store, hostname());
  const firstAdminKey = await bootstrapAdmin(
    store,
    config.dataDir,
    config.adminKey,
    clock.now(),
    config.adminPassword,
  );
  const audit = new AuditLog(
    store,
    clock,
    { maxEvents: config.auditMaxEvents, retentionDays: config.auditRetentionDays },
    log.child({ component: "audit" }),
  );
  await audit.prune();
  const credentials = new CredentialService(store, vault, config.upstreams, () => clock.now(), {
    ...DEFAULT_OAUTH_CLIENTS,
    ...config.oauthClients,
  });
  const gateway = new GatewayHub(
    store,
    credentials,
    config.upstreams,
    config.sandboxGatewayPort,
    log.child({ component: "gateway" }),
    config.upstreamProxy,
  );
  const networkPolicies = new NetworkPolicies(store, clock);
  const sandboxes = new SandboxService(
    config,
    store,
    driver,
    log.child({ component: "sandboxes" }),
    clock,
    networkPolicies,
    gateway,
  );
  const quotas = new Quotas(store, bus, events, metrics, () => clock.now(), config.modelPrices);
  sandboxes.useAdmission(quotas.admitSandboxes, (userId, work) => quotas.exclusive(userId, work));
  gateway.useAdmission(quotas.admitProviderRequest);
  const egress = new EgressHub(
    store,
    networkPolicies,
    (sandbox) => sandboxes.agentFor(sandbox),
    metrics,
    log.child({ component: "egress" }),
    { dnsServers: config.egressDnsServers, upstreamProxy: config.upstreamProxy },
  );
  sandboxes.onStarted((sandbox) => egress.ensure(sandbox));
  sandboxes.onEnded((sandboxId) => {
    void egress.sandboxEnded(sandboxId);
  });
  sandboxes.onEnded((sandboxId) => gateway.closeTunnel(sandboxId));
  const logins = new LoginService(
    options.loginFlows ?? DEFAULT_LOGIN_FLOWS,
    { repository: store.logins, node: config.nodeName, clock },
    credentials,
    { urlTimeoutMs: 60_000, totalTimeoutMs: 15 * 60_000, completeTimeoutMs: 60_000 },
    log.child({ component: "logins" }),
    async (userId, sandboxId) => {
      await sandboxes.destroy(userId, sandboxId);
    },
    async (completed) => {
      const user = await store.users.getById(completed.userId);
      await audit.record({
        action: "credential.add",
        actor: { userId: completed.userId, userName: user?.name ?? completed.userId },
        target: { type: "credential", id: completed.credentialId },
        details: { provider: completed.provider, kind: "oauth", via: "login" },
      });
    },
  );
  sandboxes.onEnded((sandboxId) => logins.sandboxEnded(sandboxId));
  logins.onEnded((userId, login) =>
    events.publish(userId, "login.finished", {
      loginId: login.id,
      provider: login.provider,
      state: login.state,
      reason: login.reason,
    }),
  );
  const runs = new RunService(
    store,
    sandboxes,
    gateway,
    CLI_RUNNERS,
    log.child({ component: "runs" }),
    () => clock.now(),
    {
      credentials,
      upstreams: config.upstreams,
      recordUsage: (entry) => store.usage.record(entry),
    },
    (sandbox, policy) => egress.widen(sandbox, policy),
  );
  sandboxes.onEnded((sandboxId) => runs.sandboxEnded(sandboxId));
  const mcpServers = new McpServerService(store, vault, config.mcpServers.maxPerUser, () => clock.now());
  runs.useMcpServers((userId, selection) => mcpServers.forRun(userId, selection));
  const gitCredentials = new GitCredentials(store, vault, () => clock.now());
  const gitAccess = new GitAccess(gitCredentials, config.gitInsecureHosts, log.child({ component: "git" }));
  const keeps = new KeepService(
    store,
    async (userId, sandboxId) => (await sandboxes.agent(userId, sandboxId)).agent,
    gitAccess,
    log.child({ component: "keep" }),
    () => clock.now(),
  );
  // Replicas share the database: each is a node that answers only for its own sandboxes. The
  // URL others reach it at is known once it listens (port 0 picks one).
  let listenUrl = "";
  const nodes = clustered(config)
    ? new NodeRegistry({
        name: config.nodeName,
        url: () => config.nodeUrl ?? listenUrl,
        drivers: driver.names(),
        refreshIntervalMs: config.nodeRefreshIntervalMs,
        leaseMs: config.nodeLeaseMs,
        store,
        clock,
        log: log.child({ component: "nodes" }),
      })
    : undefined;
  const owns = (row: SandboxRecord): boolean => nodes?.owns(row) ?? true;
  const interrupted = await runs.failInterrupted(async (sandboxId) => {
    const row = await store.sandboxes.get(sandboxId);
    return row === undefined || owns(row);
  });
  if (interrupted > 0) log.warn({ interrupted }, "runs interrupted by the restart were marked failed");
  let images: ImageService | undefined;
  let warmPools: WarmPools | undefined;
  const imagePorts: ImageStoreFactory | undefined =
    options.images ??
    (hostImages && info.features.includes("snapshot")
      ? () => ({
          storage: poolImageStorage(hostImages.pool),
          buildBase: hostImages.buildBase,
          runStep: sandboxRunStep({
            driver,
            storageRoot: hostImages.pool.root,
            limits: { ...BUILD_STEP_LIMITS, cpu: config.sandboxDefaults.cpu },
            network: info.features.includes("egress") ? "egress" : "none",
            holds: sandboxes,
          }),
          insecureRegistries: config.images.insecureRegistries,
          privateRegistries: config.images.privateRegistries,
        })
      : undefined);
  if (imagePorts) {
    const ports = imagePorts({ dataDir: config.dataDir, log: log.child({ component: "images" }) });
    images = new ImageService({
      ...ports,
      store,
      workDir: join(config.dataDir, "images"),
      log: log.child({ component: "images" }),
      clock,
    });
    await images.init();
    sandboxes.useImages(images, config.images.defaultImage);
    const imageLog = log.child({ component: "images" });
    const imageStore = images;
    if (Object.keys(config.images.warmPools).length > 0 && driver.driver(driver.name).adopt) {
      warmPools = new WarmPools({
        driver,
        sizes: config.images.warmPools,
        limits: {
          cpu: config.sandboxDefaults.cpu,
          memoryMb: config.sandboxDefaults.memoryMb,
          diskMb: config.sandboxDefaults.diskMb,
          pidsMax: config.sandboxDefaults.pidsMax,
        },
        // Pools serve images everyone sees (system ones): asked for as no user in particular.
        image: (name) => imageStore.toSandboxImage("", name),
        newId: () => newId("sbx"),
        holds: sandboxes,
        log: log.child({ component: "warm-pools" }),
      });
      sandboxes.useWarmPools(warmPools);
    }
    const pools = warmPools;
    if (config.images.defaultImage === BASE_IMAGE_NAME && ports.buildBase !== undefined) {
      // Built by the setup step: registered before the server answers (a copy into the pool), so
      // the first create finds it. Otherwise it takes minutes, in the background; progress goes to
      // the log and to GET /v1/images/polydev%2Fbase, and creates answer 409 until it is ready.
      const registering = images.ensureBaseImage();
      if (hostImages?.baseCached) await registering.catch(() => undefined);
      registering.then(
        (base) => {
          imageLog.info({ digest: base.digest }, "the default image polydev/base is ready");
          pools?.refillSoon();
        },
        (error: unknown) =>
          imageLog.warn({ err: error }, "the default image polydev/base could not be built"),
      );
    } else {
      pools?.refillSoon();
    }
  }
  const ptys = new PtySessions(config.ptyDetachGraceMs, log.child({ component: "pty" }));
  sandboxes.onEnded((sandboxId) => ptys.closeSandbox(sandboxId));
  const reconciler = new Reconciler(
    config,
    store,
    driver,
    sandboxes,
    log.child({ component: "reconciler" }),
    clock,
    owns,
  );
  await reconciler.reconcile({ startup: true });
  const jobs = periodicJobs({
    config,
    store,
    bus,
    clock,
    log: log.child({ component: "jobs" }),
    reconciler,
    audit,
    credentials,
    sessionIdleTimeoutMs: config.sessionIdleTimeoutMs,
    webhooks,
    logins,
    deadNodes: nodes
      ? async () => {
          await failDeadNodes({
            store,
            clock,
            self: config.nodeName,
            runs,
            log: log.child({ component: "dead-nodes" }),
          });
        }
      : undefined,
  });
  // Sandboxes that outlived the previous server: their allow-list interception is opened again
  // (until then their connections are refused inside the sandbox, never let through).
  for (const sandbox of (await store.sandboxes.listByStates(["running"])).filter(owns)) {
    sandboxes.announceRunning(sandbox).catch((error: unknown) => {
      log.warn({ err: error, sandboxId: sandbox.id }, "could not re-adopt a sandbox's egress interception");
    });
  }

  const previews = new PreviewService(
    config.preview,
    sandboxes,
    new PreviewLinks(await loadPreviewSecret(config.dataDir, previewSecretOf(config)), () => clock.now()),
    () => clock.now(),
    async (sandbox, userId, port) =>
      nodes && config.clusterSecret
        ? remotePortTarget(
            {
              self: config.nodeName,
              live: (name) => nodes.live(name),
              store,
              clusterSecret: config.clusterSecret,
              clock,
              openTimeoutMs: config.preview.answerTimeoutMs,
            },
            sandbox,
            userId,
            port,
          )
        : undefined,
  );
  const app = await buildApp({
    previews,
    config,
    store,
    bus,
    driver,
    sandboxes,
    ptys,
    credentials,
    gateway,
    networkPolicies,
    egress,
    metrics,
    events,
    quotas,
    logins,
    runs,
    webhooks,
    mcpServers,
    gitCredentials,
    gitAccess,
    keeps,
    images,
    sessions: new BrowserSessions(store, clock, {
      idleTimeoutMs: config.sessionIdleTimeoutMs,
      maxAgeMs: config.sessionMaxAgeMs,
    }),
    // Replicas count failed sign-ins together; a single server keeps its sliding window in memory.
    signInThrottle: nodes
      ? new BusSignInThrottle(bus, config.signInThrottle, () => clock.now())
      : new SignInThrottle(config.signInThrottle, () => clock.now()),
    oidc: new OidcVerifier(config.oidcIssuers, {
      ...DEFAULT_OIDC_LIMITS,
      refetchCooldownMs: config.oidcKeyRefetchCooldownMs,
    }),
    oidcUsers: new OidcUsers(store, clock, audit),
    audit,
    nodes,
    clock,
    log,
  });
  await app.listen({ host: config.host, port: config.port });
  const metricsServer = config.metricsListen
    ? await serveMetrics(config.metricsListen, metrics, log.child({ component: "metrics" })).catch(
        async (error: unknown) => {
          await app.close();
          throw error;
        },
      )
    : undefined;
  const address = app.server.address();
  const port = typeof address === "object" && address ? address.port : config.port;
  const host = config.host.includes(":") ? `[${config.host}]` : config.host;
  // A wildcard listen address is no address for others: the machine's name is.
  const reachableHost = ["0.0.0.0", "::", "[::]"].includes(config.host) ? hostname() : host;
  listenUrl = `http://${reachableHost}:${port}`;
  if (nodes) {
    await nodes.start().catch(async (error: unknown) => {
      await app.close();
      throw error;
    });
    if (config.clusterSecret === undefined)
      log.warn(
        "replicas share this database but POLYDEV_CLUSTER_SECRET is not set: requests for other nodes' sandboxes answer 503 cluster_secret_missing",
      );
  }
  let previewServer: PreviewListener | undefined;
  const previewListen = previewListenAddress(config, host);
  if (previewListen !== undefined) {
    previewServer = await servePreviews(previewListen, previews, log.child({ component: "preview" })).catch(
      async (error: unknown) => {
        await app.close();
        await metricsServer?.close();
        await nodes?.stop();
        throw error;
      },
    );
  }
  jobs.start();
  // Logins a previous run of this server left unfinished end now, not one interval from now:
  // until then their rows would refuse the user a new login of the same provider.
  void jobs.runNow(STALE_LOGINS_JOB);

  let closed = false;
  return {
    url: `http://${host}:${port}`,
    credentials,
    app,
    store,
    bus,
    driver,
    reconciler,
    jobs,
    images,
    storage: hostImages?.pool,
    firstAdminKey,
    metricsUrl: metricsServer?.url,
    previewUrl: previewServer?.url,
    async close() {
      if (closed) return;
      closed = true;
      await jobs.stop();
      await webhooks.close();
      await nodes?.stop();
      await reconciler.stop();
      // Before sandboxes close under them: their CLIs' exits must not read as the logins' ends.
      logins.detach();
      ptys.closeAll();
      previews.closeAll();
      await app.close();
      await metricsServer?.close();
      await previewServer?.close();
      await warmPools?.close();
      await images?.close();
      await gateway.close();
      await egress.close();
      await sandboxes.closeAll();
      await bus.close();
      await store.close();
      removeSafetyNet();
    },
  };
}

/**
 * The key preview links are signed with. Replicas must share it (a link made through one is
 * opened through any): unless POLYDEV_PREVIEW_SECRET names one, it is derived from the cluster
 * secret they already share; a single server keeps its own in its data directory.
 */
function previewSecretOf(config: PolydevConfig): string | undefined {
  if (config.preview.secret !== undefined) return config.preview.secret;
  if (!clustered(config) || config.clusterSecret === undefined) return undefined;
  return createHmac("sha256", config.clusterSecret).update("polydev preview links").digest("base64url");
}

/** Replicas share a database and a bus: each server is then a node among them. */
function clustered(config: PolydevConfig): boolean {
  return config.databaseUrl !== undefined && config.redisUrl !== undefined;
}

/**
 * Where the preview origin listens: POLYDEV_PREVIEW_LISTEN, or the API's host with the next port
 * (a random one when the API's port is random, as in tests); undefined when it is off.
 */
export function previewListenAddress(config: PolydevConfig, host: string): string | undefined {
  const listen = config.preview.listen;
  if (listen === "off") return undefined;
  if (listen !== undefined) return listen;
  return `${host}:${config.port === 0 ? 0 : config.port + 1}`;
}

/**
 * The last line of defence: a failure that escaped its request or stream is logged, never the end
 * of the server for every other user. A rejection nobody handled leaves no state half-changed
 * behind it, so serving goes on; an uncaught exception may have, so the process logs it and exits
 * (a supervisor restarts it and the reconciler picks up from the database). Either is a bug:
 * the tests fail on any `processFault` line.
 */
export function installProcessSafetyNet(log: Logger): () => void {
  const onRejection = (reason: unknown): void => {
    log.error({ processFault: "unhandledRejection", err: reason }, "unhandled promise rejection (a bug)");
  };
  const onException = (error: Error, origin: string): void => {
    log.fatal(
      { processFault: "uncaughtException", err: error, origin },
      "uncaught exception (a bug); exiting",
    );
    process.exitCode = 70;
    // Let pino's destination flush before the process goes.
    setImmediate(() => process.exit(70));
  };
  process.on("unhandledRejection", onRejection);
  process.on("uncaughtException", onException);
  return () => {
    process.off("unhandledRejection", onRejection);
    process.off("uncaughtException", onException);
  };
}
