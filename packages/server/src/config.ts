/**
 * The one config parse. Entry points hand in `process.env` and flags; everything after start-up
 * reads the frozen result. Every setting has a default so `polydev up` needs nothing else.
 */
import { homedir, hostname } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { PolydevError } from "@polydev/core";
import { parseUpstreamProxy } from "@polydev/egress";
import { z } from "zod";
import { oidcIssuerSchema } from "./oidc-config.js";

const MiB = 1;
const MINUTE_MS = 60_000;
const HOUR_MS = 60 * MINUTE_MS;
const DAY_MS = 24 * HOUR_MS;

/** `packages/web/dist` of this checkout; the same from src/ and dist/, both one level down. */
const DEFAULT_WEB_DIR = fileURLToPath(new URL("../../web/dist", import.meta.url));

const intFromEnv = z.coerce.number().int();

/** Whether the egress side can use this as the operator's or a user's upstream proxy. */
export function isUpstreamProxyUrl(url: string): boolean {
  try {
    parseUpstreamProxy(url);
    return true;
  } catch {
    return false;
  }
}

export const configSchema = z
  .object({
    /** POLYDEV_HOST; loopback by default so a first start exposes nothing. */
    host: z.string().min(1).default("127.0.0.1"),
    /** POLYDEV_PORT */
    port: intFromEnv.min(0).max(65535).default(7420),
    /** POLYDEV_DATA_DIR: database, admin key, sandbox state. */
    dataDir: z.string().min(1).default(join(homedir(), ".polydev")),
    /**
     * POLYDEV_DATABASE_URL: `postgres://user:password@host:5432/db?sslmode=verify-full` stores
     * everything in that Postgres (any, Supabase included) instead of the SQLite file in the data
     * directory (the default). Query parameters such as `statement_timeout` (ms) reach the server.
     */
    databaseUrl: z
      .string()
      .regex(/^postgres(ql)?:\/\//, "POLYDEV_DATABASE_URL must be a postgres:// or postgresql:// URL")
      .optional(),
    /**
     * POLYDEV_REDIS_URL: `redis://[:password@]host:6379[/db]` (`rediss://` for TLS, or a unix socket
     * path such as `/run/redis/redis.sock`) carries events,
     * locks and counters between replicas; without it they stay in this process (the default).
     */
    redisUrl: z
      .string()
      .regex(
        /^(rediss?:\/\/|\/)/,
        "POLYDEV_REDIS_URL must be a redis:// or rediss:// URL, or a unix socket path",
      )
      .optional(),
    /** POLYDEV_ADMIN_KEY: becomes the admin's API key on first start (automation). */
    adminKey: z.string().min(24, "POLYDEV_ADMIN_KEY must be at least 24 characters").optional(),
    /**
     * POLYDEV_ADMIN_PASSWORD: becomes the admin's dashboard password on first start; later starts
     * ignore it (change it with PUT /v1/me/password).
     */
    adminPassword: z
      .string()
      .min(8, "POLYDEV_ADMIN_PASSWORD must be at least 8 characters")
      .max(200, "POLYDEV_ADMIN_PASSWORD must be at most 200 characters")
      .optional(),
    /** POLYDEV_SESSION_IDLE_TIMEOUT_MS: a browser session unused this long ends (default 7 days). */
    sessionIdleTimeoutMs: intFromEnv.positive().default(7 * DAY_MS),
    /** POLYDEV_SESSION_MAX_AGE_MS: a browser session ends this long after sign-in, used or not (default 30 days). */
    sessionMaxAgeMs: intFromEnv.positive().default(30 * DAY_MS),
    /**
     * Failed sign-ins allowed within `windowMs`, per user name and per client address, before
     * further attempts answer 429 until the oldest failure leaves the window.
     */
    signInThrottle: z
      .object({
        maxFailuresPerName: z.number().int().positive().default(5),
        maxFailuresPerIp: z.number().int().positive().default(20),
        windowMs: z
          .number()
          .int()
          .positive()
          .default(15 * MINUTE_MS),
      })
      .prefault({}),
    /** POLYDEV_WEB_DIR: the built dashboard (index.html + assets/); default `packages/web/dist`. */
    webDir: z.string().min(1).default(DEFAULT_WEB_DIR),
    /** POLYDEV_LOG_LEVEL */
    logLevel: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
    /**
     * POLYDEV_DRIVER: the isolation backend new sandboxes get unless they name one, by the name
     * the entry point registered it under (checked at start-up against that registry).
     */
    driver: z.string().min(1).max(64).default("namespace"),
    /**
     * POLYDEV_DRIVERS (comma-separated): further drivers this server runs beside the default
     * one; a create picks one with `"driver"`. Each must pass its probe, or the server does not
     * start (the error says what to install).
     */
    drivers: z.array(z.string().min(1).max(64)).max(16).default([]),
    /**
     * POLYDEV_DRIVER_<NAME>_<SETTING>: each driver's own settings, as the strings the environment
     * gave, by driver name and camel-cased setting (POLYDEV_DRIVER_GVISOR_PLATFORM=systrap is
     * `{ gvisor: { platform: "systrap" } }`). The schema each driver registered validates them
     * at start-up (services/open-drivers.ts), so a typo stops the server instead of being ignored.
     */
    driverSettings: z
      .record(z.string().regex(/^[a-z][a-z0-9]*$/), z.record(z.string(), z.string().max(4096)))
      .default({}),
    /**
     * POLYDEV_HOST_UID_REGISTRY_DIR: where the namespace driver claims the host uids its
     * sandboxes run as, one file per uid. Host-wide on purpose: every server on the host that
     * shares it never hands out a uid another one uses. Keep it outside any data directory.
     */
    hostUidRegistryDir: z.string().min(1).default("/var/lib/polydev/host-uids"),
    sandboxDefaults: z
      .object({
        cpu: z.number().positive().default(1),
        memoryMb: z
          .number()
          .int()
          .positive()
          .default(512 * MiB),
        diskMb: z
          .number()
          .int()
          .positive()
          .default(1024 * MiB),
        pidsMax: z.number().int().positive().default(256),
        /** Hard TTL: a sandbox is destroyed this long after creation. */
        timeoutMs: z
          .number()
          .int()
          .positive()
          .default(24 * HOUR_MS),
        /** Destroyed after this long without API activity. */
        idleTimeoutMs: z
          .number()
          .int()
          .positive()
          .default(30 * MINUTE_MS),
      })
      .prefault({}),
    sandboxMaximums: z
      .object({
        cpu: z.number().positive().default(8),
        memoryMb: z
          .number()
          .int()
          .positive()
          .default(16 * 1024),
        diskMb: z
          .number()
          .int()
          .positive()
          .default(16 * 1024),
        pidsMax: z.number().int().positive().default(4096),
        timeoutMs: z
          .number()
          .int()
          .positive()
          .default(7 * 24 * HOUR_MS),
        idleTimeoutMs: z
          .number()
          .int()
          .positive()
          .default(7 * 24 * HOUR_MS),
      })
      .prefault({}),
    /**
     * POLYDEV_SANDBOX_INACTIVE_DESTROY_DAYS: a sandbox stopped (by its owner or by its idle
     * timeout, with a durable driver) for longer than this is destroyed with its disk. Fractions
     * are allowed (0.5 is 12 hours).
     */
    sandboxInactiveDestroyDays: z.coerce
      .number({ error: "POLYDEV_SANDBOX_INACTIVE_DESTROY_DAYS must be a number of days (e.g. 14 or 0.5)" })
      .positive("POLYDEV_SANDBOX_INACTIVE_DESTROY_DAYS must be more than 0 days")
      .default(14),
    /** Sandboxes one user may hold that are not destroyed or failed (stopped ones count: they keep a disk). */
    maxSandboxesPerUser: intFromEnv.positive().default(1000),
    /** POLYDEV_MASTER_KEY: the vault's master key (32 bytes, hex or base64); else a key file in the data dir. */
    masterKey: z.string().optional(),
    /** POLYDEV_<PROVIDER>_BASE_URL: where the gateway sends each provider's traffic. */
    upstreams: z
      .object({
        anthropic: z.url().default("https://api.anthropic.com"),
        openai: z.url().default("https://api.openai.com"),
        gemini: z.url().default("https://generativelanguage.googleapis.com"),
      })
      .prefault({}),
    /**
     * POLYDEV_<PROVIDER>_OAUTH_TOKEN_URL / _CLIENT_ID / _CLIENT_SECRET: how expiring subscription
     * logins are refreshed. Defaults: the public values from each CLI's own sign-in URL.
     */
    oauthClients: z
      .partialRecord(
        z.enum(["anthropic", "openai", "gemini"]),
        z.object({
          tokenUrl: z.url(),
          clientId: z.string().min(1),
          clientSecret: z.string().optional(),
          json: z.boolean(),
        }),
      )
      .optional(),
    /** POLYDEV_UPSTREAM_PROXY: an operator's declared HTTP(S) proxy for provider traffic. */
    upstreamProxy: z
      .string()
      .refine(isUpstreamProxyUrl, {
        error:
          "POLYDEV_UPSTREAM_PROXY must be a URL like http://[user:password@]proxy.example:3128 (http, no path)",
      })
      .optional(),
    /**
     * POLYDEV_MODEL_PRICES (`model=input:output,…`, USD per million tokens, e.g.
     * `claude-sonnet-4-5=3:15,gpt-5=1.25:10`; `*` prices every other model): what plans'
     * `costPerMonthUsd` counts with. A model with no price costs nothing (default: none priced).
     */
    modelPrices: z
      .record(
        z.string().min(1).max(200),
        z.object({ inputPerMTokUsd: z.number().min(0), outputPerMTokUsd: z.number().min(0) }),
      )
      .default({}),
    /**
     * POLYDEV_EGRESS_DNS_SERVERS (comma-separated "addr" or "addr:port"): the resolvers that answer
     * allow-list sandboxes' DNS queries; default: the host's own (/etc/resolv.conf).
     */
    egressDnsServers: z
      .array(
        z
          .string()
          .regex(
            /^(\d{1,3}(\.\d{1,3}){3}(:\d{1,5})?|\[[0-9a-fA-F:]+\](:\d{1,5})?|[0-9a-fA-F:]+)$/,
            "each egress DNS server is an IP address, optionally with :port (IPv6 in brackets then)",
          ),
      )
      .min(1)
      .optional(),
    /**
     * POLYDEV_GIT_INSECURE_HOSTS (comma-separated `host[:port]`): git hosts and forge APIs the
     * server may reach over plain http and at private addresses when it relays a private
     * repository's git traffic or opens a pull request (a LAN forge, a test's). Every other host is
     * reached over https at public addresses only, so a stored credential never points the server
     * at its own network. Default: none.
     */
    gitInsecureHosts: z
      .array(
        z
          .string()
          .regex(
            /^[a-z0-9.-]+(:\d{1,5})?$|^\[[0-9a-f:]+\](:\d{1,5})?$/,
            "each POLYDEV_GIT_INSECURE_HOSTS entry is a lowercase host[:port]",
          ),
      )
      .default([]),
    /** POLYDEV_SANDBOX_GATEWAY_PORT: the loopback port inside each sandbox that reaches the gateway. */
    sandboxGatewayPort: intFromEnv.min(1024).max(65535).default(4100),
    /** How often the reconciler compares the database with the host. */
    reconcileIntervalMs: intFromEnv.positive().default(15_000),
    /**
     * POLYDEV_NODE_NAME: this server's name among replicas (per-node job records, which node ran
     * a job). Default: the host name; two servers on one host need their own.
     */
    nodeName: z
      .string()
      .regex(/^[A-Za-z0-9._-]{1,100}$/, "the node name is 1..100 of [A-Za-z0-9._-]")
      .default(
        hostname()
          .slice(0, 100)
          .replace(/[^A-Za-z0-9._-]/g, "-") || "node",
      ),
    /**
     * POLYDEV_NODE_URL: where other replicas reach this server (requests for its sandboxes are
     * forwarded here), e.g. `http://10.0.0.5:7420`. Default: its listen address (a wildcard host
     * becomes this machine's host name). Only used when replicas share a database and Redis.
     */
    nodeUrl: z
      .string()
      .regex(/^https?:\/\/[^/?#\s]+$/, "POLYDEV_NODE_URL must be http(s)://host:port with no path")
      .optional(),
    /**
     * POLYDEV_CLUSTER_SECRET: the key (at least 32 characters, the same on every replica) that
     * signs requests one replica forwards to another. Needed as soon as a second replica shares
     * the database and Redis: without it nothing is forwarded (503 `cluster_secret_missing`).
     */
    clusterSecret: z.string().min(32, "POLYDEV_CLUSTER_SECRET must be at least 32 characters").optional(),
    /**
     * POLYDEV_NODE_REFRESH_INTERVAL_MS: how often a node refreshes its registration (capacity,
     * running sandboxes) and the dead-node job runs (default 5 s).
     */
    nodeRefreshIntervalMs: intFromEnv.min(100).default(5_000),
    /**
     * POLYDEV_NODE_LEASE_MS: a node whose registration is older than this has stopped answering;
     * its sandboxes are marked failed within this plus three refresh intervals (default 15 s).
     */
    nodeLeaseMs: intFromEnv.min(300).default(15_000),
    /** How often every stored provider credential is checked with its provider (cluster-wide). */
    credentialValidationIntervalMs: intFromEnv.positive().default(6 * 60 * MINUTE_MS),
    /**
     * How long the gateway's per-request usage rows are kept as they are; the hourly usage
     * roll-up then folds them into per-hour sums (exact totals, one row per user, model and hour).
     */
    usageRawRetentionMs: intFromEnv.positive().default(48 * 60 * MINUTE_MS),
    /** A creating/destroying sandbox older than this is finished or failed by the reconciler. */
    transitionTimeoutMs: intFromEnv.positive().default(2 * MINUTE_MS),
    /** Default and ceiling for one exec. */
    execDefaultTimeoutMs: intFromEnv.positive().default(10 * MINUTE_MS),
    /** Largest JSON body (exec with inline stdin); file uploads stream and are bounded by disk. */
    jsonBodyLimitBytes: intFromEnv.positive().default(16 * 1024 * 1024),
    /** Largest stdout/stderr kept per stream in a non-streaming exec answer. */
    execBufferLimitBytes: intFromEnv.positive().default(8 * 1024 * 1024),
    /**
     * POLYDEV_METRICS_LISTEN (`host:port`, e.g. 127.0.0.1:9464): a second listener serving only
     * GET /metrics without authentication, for a Prometheus on the same network. Unset (the
     * default), /metrics is served on the API port to admin keys only.
     */
    metricsListen: z
      .string()
      .regex(
        /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/,
        "POLYDEV_METRICS_LISTEN must be host:port (e.g. 127.0.0.1:9464)",
      )
      .optional(),
    /**
     * Preview URLs: a sandbox's ports reached over its agent channel. Browsers get them on a
     * separate origin (see services/preview-listener.ts for the trade-off of the two modes).
     */
    preview: z
      .object({
        /**
         * POLYDEV_PREVIEW_LISTEN (`host:port`, or `off`): the preview origin's own listener.
         * Default: the API's host and port + 1 (port 0 when the API's port is 0).
         */
        listen: z
          .string()
          .regex(
            /^(off|(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5})$/,
            "POLYDEV_PREVIEW_LISTEN must be host:port (e.g. 127.0.0.1:7421) or off",
          )
          .optional(),
        /**
         * POLYDEV_PREVIEW_URL: how browsers reach the preview listener (e.g.
         * `https://preview.example.com`), when a proxy sits in front; default `http://<listen>`.
         */
        publicUrl: z.url().optional(),
        /**
         * POLYDEV_PREVIEW_DOMAIN (e.g. `preview.example.com`): previews live at
         * `<port>-<sandbox id>.<domain>`, each on its own origin, at `/` (the strong mode; needs a
         * wildcard DNS record pointing at the preview listener). Unset: path mode on one origin.
         */
        domain: z
          .string()
          .regex(/^(?=.{1,200}$)([a-z0-9-]+\.)*[a-z0-9-]+$/, "POLYDEV_PREVIEW_DOMAIN must be a DNS name")
          .optional(),
        /**
         * POLYDEV_PREVIEW_SECRET (at least 32 characters): signs preview links and cookies.
         * Default: a random one kept in the data directory (`preview-secret`, mode 600); replicas
         * (Postgres and Redis) derive one from their shared cluster secret instead.
         */
        secret: z.string().min(32, "POLYDEV_PREVIEW_SECRET must be at least 32 characters").optional(),
        /** A link's life when the request names none (default 5 minutes). */
        linkTtlMs: intFromEnv.positive().default(5 * MINUTE_MS),
        /** The longest life a link may ask for (default 7 days, for share links). */
        maxLinkTtlMs: intFromEnv.positive().default(7 * DAY_MS),
        /** How long the cookie a link sets stays valid (default 12 hours, never past a share link's end). */
        sessionTtlMs: intFromEnv.positive().default(12 * HOUR_MS),
        /** A sandbox that sends no answer head within this long gets a 504 (default 30 s). */
        answerTimeoutMs: intFromEnv.positive().default(30_000),
        /** Proxied connections (requests and WebSockets) open at once per sandbox; more answer 429. */
        maxConnectionsPerSandbox: intFromEnv.positive().default(64),
        /** Largest answer head a sandbox may send (bytes); a bigger one answers 502. */
        maxHeaderBytes: intFromEnv
          .min(1024)
          .max(1024 * 1024)
          .default(32 * 1024),
      })
      .prefault({}),
    /** The event stream (GET /v1/events): what one client may hold. */
    events: z
      .object({
        /** Open streams per user at once; one more answers 429 `too_many_streams`. */
        maxStreamsPerUser: intFromEnv.positive().default(8),
        /**
         * Bytes a client may leave unread in its connection before it is disconnected (it then
         * reconnects with Last-Event-ID and misses nothing the bus still retains).
         */
        maxBufferedBytes: intFromEnv.positive().default(1024 * 1024),
      })
      .prefault({}),
    /** Webhooks (docs/webhooks.md): where and how often deliveries go out. */
    webhooks: z
      .object({
        /**
         * POLYDEV_WEBHOOK_ALLOW_PRIVATE=1: deliveries may go to loopback, private and link-local
         * addresses. Off by default: the server host sends them, so a URL on those addresses
         * would reach what only the host should (metadata services, internal ports).
         */
        allowPrivate: z.boolean().default(false),
        /** POLYDEV_WEBHOOK_MAX_PER_USER: webhooks one user may register. */
        maxPerUser: intFromEnv.min(1).max(1000).default(20),
        /** POLYDEV_WEBHOOK_MAX_ATTEMPTS: tries per delivery before it is marked failed. */
        maxAttempts: intFromEnv.min(1).max(20).default(5),
        /** POLYDEV_WEBHOOK_RETRY_BASE_MS: the first retry's delay; each next one is 4 times longer (45 s: 5 tries over about an hour). */
        retryBaseMs: intFromEnv.min(1).default(45_000),
        /** POLYDEV_WEBHOOK_POLL_MS: how often due deliveries are looked for (new ones are sent at once). */
        pollIntervalMs: intFromEnv.min(10).default(5_000),
        /** POLYDEV_WEBHOOK_TIMEOUT_MS: one request's limit for the answer's headers and body. */
        timeoutMs: intFromEnv.min(100).max(120_000).default(10_000),
        /** Finished deliveries are kept this long for the delivery log. */
        retentionDays: z.coerce.number().positive().default(30),
      })
      .prefault({}),
    /** MCP servers users configure for their agents. */
    mcpServers: z
      .object({
        /** POLYDEV_MCP_MAX_PER_USER: MCP servers one user may configure. */
        maxPerUser: intFromEnv.min(1).max(200).default(20),
      })
      .prefault({}),
    /** A detached terminal keeps running this long, waiting for its reconnect. */
    ptyDetachGraceMs: intFromEnv.positive().default(10 * MINUTE_MS),
    /**
     * Images, root and durable sandboxes (the storage pool: an XFS file system in a sparse file
     * under the data directory, holding image layers and every sandbox's disk).
     */
    images: z
      .object({
        /** POLYDEV_IMAGES=off: no pool; sandboxes are host views (no root, no durable disk). */
        enabled: z.boolean().default(true),
        /** POLYDEV_STORAGE_POOL_GB: the pool's size (sparse); default 80% of the free space. */
        poolSizeGb: z.number().positive().optional(),
        /**
         * POLYDEV_IMAGE_CACHE_DIR: host-wide cache of the default image's and the toolbox's
         * builds, keyed by their inputs, shared by every server on the host.
         */
        cacheDir: z.string().min(1).default("/var/cache/polydev/images"),
        /** POLYDEV_DEFAULT_IMAGE: what a create without `image` starts from ("" = the host view). */
        defaultImage: z.string().default("polydev/base"),
        /**
         * POLYDEV_WARM_POOL=polydev/base=2,team/app=1: ready sandboxes kept per image (network
         * none, default limits) that a create claims instead of starting one.
         */
        warmPools: z.record(z.string(), z.number().int().min(0).max(64)).default({}),
        /** POLYDEV_INSECURE_REGISTRIES: registries pulled from over plain http (`host:port`). */
        insecureRegistries: z.array(z.string()).default([]),
        /**
         * POLYDEV_PRIVATE_REGISTRIES: registries (`host` or `host:port`) pulls may reach although
         * they resolve to loopback, private or link-local addresses. Pulls refuse every other such
         * connection (registry_refused), redirects included: the reference is the user's.
         * Insecure registries are allowed there too.
         */
        privateRegistries: z.array(z.string()).default([]),
      })
      .prefault({}),
    /**
     * POLYDEV_OIDC_ISSUERS: a JSON array of external issuers whose JWTs are accepted as bearer
     * tokens and for dashboard sign-in, e.g.
     * `[{"issuer":"https://idp.example/realms/team","audience":"polydev","roleClaim":"realm_access.roles"}]`
     * (fields in oidc-config.ts). Default: none.
     */
    oidcIssuers: z.array(oidcIssuerSchema).max(20).default([]),
    /**
     * POLYDEV_OIDC_KEY_REFETCH_COOLDOWN_MS: a token naming a key id the cached JWKS lacks refetches
     * the issuer's keys at most once per this long (default 30 s): rotation is picked up, while
     * tokens with random key ids cannot make the server hammer the issuer.
     */
    oidcKeyRefetchCooldownMs: intFromEnv.min(100).max(3_600_000).default(30_000),
    /** POLYDEV_AUDIT_RETENTION_DAYS: audit events older than this are dropped (default 365). */
    auditRetentionDays: z.coerce.number().positive().default(365),
    /** POLYDEV_AUDIT_MAX_EVENTS: at most this many audit events are kept, newest first (default 100000). */
    auditMaxEvents: intFromEnv.min(100).default(100_000),
  })
  .strict();

export type PolydevConfig = Readonly<z.output<typeof configSchema>>;
export type ConfigInput = z.input<typeof configSchema>;

/** Settings the environment may supply; flags win over the environment. */
export function configFromEnv(env: NodeJS.ProcessEnv): ConfigInput {
  const input: ConfigInput = {};
  if (env.POLYDEV_HOST) input.host = env.POLYDEV_HOST;
  if (env.POLYDEV_PORT) input.port = Number(env.POLYDEV_PORT);
  if (env.POLYDEV_DATA_DIR) input.dataDir = env.POLYDEV_DATA_DIR;
  if (env.POLYDEV_DATABASE_URL) input.databaseUrl = env.POLYDEV_DATABASE_URL;
  if (env.POLYDEV_REDIS_URL) input.redisUrl = env.POLYDEV_REDIS_URL;
  if (env.POLYDEV_NODE_NAME) input.nodeName = env.POLYDEV_NODE_NAME;
  if (env.POLYDEV_NODE_URL) input.nodeUrl = env.POLYDEV_NODE_URL;
  if (env.POLYDEV_CLUSTER_SECRET) input.clusterSecret = env.POLYDEV_CLUSTER_SECRET;
  if (env.POLYDEV_NODE_REFRESH_INTERVAL_MS)
    input.nodeRefreshIntervalMs = Number(env.POLYDEV_NODE_REFRESH_INTERVAL_MS);
  if (env.POLYDEV_NODE_LEASE_MS) input.nodeLeaseMs = Number(env.POLYDEV_NODE_LEASE_MS);
  if (env.POLYDEV_ADMIN_KEY) input.adminKey = env.POLYDEV_ADMIN_KEY;
  if (env.POLYDEV_ADMIN_PASSWORD) input.adminPassword = env.POLYDEV_ADMIN_PASSWORD;
  if (env.POLYDEV_SESSION_IDLE_TIMEOUT_MS)
    input.sessionIdleTimeoutMs = Number(env.POLYDEV_SESSION_IDLE_TIMEOUT_MS);
  if (env.POLYDEV_SESSION_MAX_AGE_MS) input.sessionMaxAgeMs = Number(env.POLYDEV_SESSION_MAX_AGE_MS);
  if (env.POLYDEV_WEB_DIR) input.webDir = env.POLYDEV_WEB_DIR;
  if (env.POLYDEV_OIDC_ISSUERS) input.oidcIssuers = oidcIssuersFromEnv(env.POLYDEV_OIDC_ISSUERS);
  if (env.POLYDEV_OIDC_KEY_REFETCH_COOLDOWN_MS)
    input.oidcKeyRefetchCooldownMs = Number(env.POLYDEV_OIDC_KEY_REFETCH_COOLDOWN_MS);
  if (env.POLYDEV_AUDIT_RETENTION_DAYS) input.auditRetentionDays = Number(env.POLYDEV_AUDIT_RETENTION_DAYS);
  if (env.POLYDEV_AUDIT_MAX_EVENTS) input.auditMaxEvents = Number(env.POLYDEV_AUDIT_MAX_EVENTS);
  if (env.POLYDEV_LOG_LEVEL) input.logLevel = env.POLYDEV_LOG_LEVEL as ConfigInput["logLevel"];
  if (env.POLYDEV_DRIVER) input.driver = env.POLYDEV_DRIVER;
  if (env.POLYDEV_DRIVERS)
    input.drivers = env.POLYDEV_DRIVERS.split(",")
      .map((name) => name.trim())
      .filter((name) => name !== "");
  const driverSettings = driverSettingsFromEnv(env);
  if (Object.keys(driverSettings).length > 0) input.driverSettings = driverSettings;
  if (env.POLYDEV_HOST_UID_REGISTRY_DIR) input.hostUidRegistryDir = env.POLYDEV_HOST_UID_REGISTRY_DIR;
  if (env.POLYDEV_MASTER_KEY) input.masterKey = env.POLYDEV_MASTER_KEY;
  if (env.POLYDEV_UPSTREAM_PROXY) input.upstreamProxy = env.POLYDEV_UPSTREAM_PROXY;
  if (env.POLYDEV_MODEL_PRICES) input.modelPrices = modelPricesFromEnv(env.POLYDEV_MODEL_PRICES);
  if (env.POLYDEV_EGRESS_DNS_SERVERS)
    input.egressDnsServers = env.POLYDEV_EGRESS_DNS_SERVERS.split(",").map((s) => s.trim());
  if (env.POLYDEV_METRICS_LISTEN) input.metricsListen = env.POLYDEV_METRICS_LISTEN;
  if (env.POLYDEV_GIT_INSECURE_HOSTS)
    input.gitInsecureHosts = env.POLYDEV_GIT_INSECURE_HOSTS.split(",")
      .map((s) => s.trim().toLowerCase())
      .filter((s) => s !== "");
  const preview: NonNullable<ConfigInput["preview"]> = {};
  if (env.POLYDEV_PREVIEW_LISTEN) preview.listen = env.POLYDEV_PREVIEW_LISTEN.trim();
  if (env.POLYDEV_PREVIEW_URL) preview.publicUrl = env.POLYDEV_PREVIEW_URL.trim();
  if (env.POLYDEV_PREVIEW_DOMAIN) preview.domain = env.POLYDEV_PREVIEW_DOMAIN.trim().toLowerCase();
  if (env.POLYDEV_PREVIEW_SECRET) preview.secret = env.POLYDEV_PREVIEW_SECRET;
  if (Object.keys(preview).length > 0) input.preview = preview;
  if (env.POLYDEV_SANDBOX_GATEWAY_PORT) input.sandboxGatewayPort = Number(env.POLYDEV_SANDBOX_GATEWAY_PORT);
  if (env.POLYDEV_SANDBOX_INACTIVE_DESTROY_DAYS)
    input.sandboxInactiveDestroyDays = Number(env.POLYDEV_SANDBOX_INACTIVE_DESTROY_DAYS);
  input.images = imagesFromEnv(env);
  input.webhooks = webhooksFromEnv(env);
  if (env.POLYDEV_MCP_MAX_PER_USER) input.mcpServers = { maxPerUser: Number(env.POLYDEV_MCP_MAX_PER_USER) };
  const upstreams: Record<string, string> = {};
  if (env.POLYDEV_ANTHROPIC_BASE_URL) upstreams.anthropic = env.POLYDEV_ANTHROPIC_BASE_URL;
  if (env.POLYDEV_OPENAI_BASE_URL) upstreams.openai = env.POLYDEV_OPENAI_BASE_URL;
  if (env.POLYDEV_GEMINI_BASE_URL) upstreams.gemini = env.POLYDEV_GEMINI_BASE_URL;
  if (Object.keys(upstreams).length > 0) input.upstreams = upstreams;
  const oauthClients: NonNullable<ConfigInput["oauthClients"]> = {};
  for (const provider of ["anthropic", "openai", "gemini"] as const) {
    const prefix = `POLYDEV_${provider.toUpperCase()}_OAUTH_`;
    const tokenUrl = env[`${prefix}TOKEN_URL`];
    const clientId = env[`${prefix}CLIENT_ID`];
    if (tokenUrl && clientId) {
      oauthClients[provider] = {
        tokenUrl,
        clientId,
        clientSecret: env[`${prefix}CLIENT_SECRET`],
        json: provider === "anthropic",
      };
    }
  }
  if (Object.keys(oauthClients).length > 0) input.oauthClients = oauthClients;
  return input;
}

const DRIVER_SETTING_VARIABLE = /^POLYDEV_DRIVER_([A-Z][A-Z0-9]*)_([A-Z][A-Z0-9_]*)$/;

/** The env's driver settings: `POLYDEV_DRIVER_GVISOR_MEMORY_OVERHEAD_MB` → gvisor.memoryOverheadMb. */
function driverSettingsFromEnv(env: NodeJS.ProcessEnv): Record<string, Record<string, string>> {
  const settings: Record<string, Record<string, string>> = {};
  for (const [variable, value] of Object.entries(env)) {
    const match = DRIVER_SETTING_VARIABLE.exec(variable);
    if (match === null || value === undefined) continue;
    const [, driver = "", setting = ""] = match;
    const key = setting.toLowerCase().replace(/_([a-z0-9])/g, (_, next: string) => next.toUpperCase());
    const forDriver = settings[driver.toLowerCase()] ?? {};
    forDriver[key] = value;
    settings[driver.toLowerCase()] = forDriver;
  }
  // The namespace driver's one setting had its own name before drivers had settings; it still works.
  const tune = env.POLYDEV_TUNE_HOST_CGROUPS;
  if (tune !== undefined && tune !== "" && settings.namespace?.tuneHostCgroups === undefined) {
    settings.namespace = { ...settings.namespace, tuneHostCgroups: tune };
  }
  return settings;
}

/** The env variable a driver setting comes from, for messages. */
export function driverSettingVariable(driver: string, setting: string): string {
  const snake = setting.replace(/[A-Z]/g, (letter) => `_${letter}`).toUpperCase();
  return `POLYDEV_DRIVER_${driver.toUpperCase()}_${snake}`;
}

/** The schema checks the entries; this only turns the text into JSON, saying where it broke. */
function oidcIssuersFromEnv(text: string): NonNullable<ConfigInput["oidcIssuers"]> {
  try {
    return JSON.parse(text) as NonNullable<ConfigInput["oidcIssuers"]>;
  } catch (error) {
    throw new PolydevError(
      "invalid_request",
      `POLYDEV_OIDC_ISSUERS must be a JSON array of issuers (${error instanceof Error ? error.message : "not JSON"})`,
    );
  }
}

function webhooksFromEnv(env: NodeJS.ProcessEnv): NonNullable<ConfigInput["webhooks"]> {
  const webhooks: NonNullable<ConfigInput["webhooks"]> = {};
  const allow = env.POLYDEV_WEBHOOK_ALLOW_PRIVATE?.trim().toLowerCase();
  if (allow !== undefined && allow !== "") {
    if (!["1", "0", "true", "false", "on", "off"].includes(allow))
      throw new PolydevError(
        "invalid_request",
        `POLYDEV_WEBHOOK_ALLOW_PRIVATE must be 1 or 0 (got "${env.POLYDEV_WEBHOOK_ALLOW_PRIVATE}")`,
      );
    webhooks.allowPrivate = ["1", "true", "on"].includes(allow);
  }
  if (env.POLYDEV_WEBHOOK_MAX_PER_USER) webhooks.maxPerUser = Number(env.POLYDEV_WEBHOOK_MAX_PER_USER);
  if (env.POLYDEV_WEBHOOK_MAX_ATTEMPTS) webhooks.maxAttempts = Number(env.POLYDEV_WEBHOOK_MAX_ATTEMPTS);
  if (env.POLYDEV_WEBHOOK_RETRY_BASE_MS) webhooks.retryBaseMs = Number(env.POLYDEV_WEBHOOK_RETRY_BASE_MS);
  if (env.POLYDEV_WEBHOOK_POLL_MS) webhooks.pollIntervalMs = Number(env.POLYDEV_WEBHOOK_POLL_MS);
  if (env.POLYDEV_WEBHOOK_TIMEOUT_MS) webhooks.timeoutMs = Number(env.POLYDEV_WEBHOOK_TIMEOUT_MS);
  return webhooks;
}

function imagesFromEnv(env: NodeJS.ProcessEnv): NonNullable<ConfigInput["images"]> {
  const images: NonNullable<ConfigInput["images"]> = {};
  const enabled = env.POLYDEV_IMAGES?.trim().toLowerCase();
  if (enabled !== undefined && enabled !== "") {
    if (!["on", "off", "true", "false", "1", "0"].includes(enabled)) {
      throw new PolydevError(
        "invalid_request",
        `POLYDEV_IMAGES must be on or off (got "${env.POLYDEV_IMAGES}")`,
      );
    }
    images.enabled = ["on", "true", "1"].includes(enabled);
  }
  if (env.POLYDEV_STORAGE_POOL_GB) images.poolSizeGb = Number(env.POLYDEV_STORAGE_POOL_GB);
  if (env.POLYDEV_IMAGE_CACHE_DIR) images.cacheDir = env.POLYDEV_IMAGE_CACHE_DIR;
  if (env.POLYDEV_DEFAULT_IMAGE !== undefined) images.defaultImage = env.POLYDEV_DEFAULT_IMAGE.trim();
  if (env.POLYDEV_INSECURE_REGISTRIES)
    images.insecureRegistries = env.POLYDEV_INSECURE_REGISTRIES.split(",")
      .map((s) => s.trim())
      .filter(Boolean);
  if (env.POLYDEV_PRIVATE_REGISTRIES)
    images.privateRegistries = env.POLYDEV_PRIVATE_REGISTRIES.split(",")
      .map((s) => s.trim())
      .filter(Boolean);
  if (env.POLYDEV_WARM_POOL) {
    const pools: Record<string, number> = {};
    for (const entry of env.POLYDEV_WARM_POOL.split(",")
      .map((s) => s.trim())
      .filter(Boolean)) {
      const at = entry.lastIndexOf("=");
      const size = Number(entry.slice(at + 1));
      if (at <= 0 || !Number.isInteger(size)) {
        throw new PolydevError(
          "invalid_request",
          `POLYDEV_WARM_POOL entries are image=count, e.g. polydev/base=2 (got "${entry}")`,
        );
      }
      pools[entry.slice(0, at)] = size;
    }
    images.warmPools = pools;
  }
  return images;
}

export function parseConfig(input: ConfigInput): PolydevConfig {
  const parsed = configSchema.safeParse(input);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join(".") || "config"}: ${i.message}`);
    throw new PolydevError("invalid_request", `invalid configuration: ${problems.join("; ")}`);
  }
  // Replicas sharing Postgres and Redis forward requests to each other, signed with the secret;
  // without it they could only answer 503 for every other node's sandbox, found out at the
  // first such request. Refused at start instead, saying what to set.
  if (
    parsed.data.databaseUrl !== undefined &&
    parsed.data.redisUrl !== undefined &&
    !parsed.data.clusterSecret
  ) {
    throw new PolydevError(
      "invalid_request",
      "invalid configuration: POLYDEV_CLUSTER_SECRET is required when POLYDEV_DATABASE_URL and POLYDEV_REDIS_URL are both set (replicas sign the requests they forward to each other): set the same value of at least 32 characters on every replica, e.g. from `openssl rand -hex 32`",
    );
  }
  const config = {
    ...parsed.data,
    dataDir: resolve(parsed.data.dataDir),
    hostUidRegistryDir: resolve(parsed.data.hostUidRegistryDir),
    webDir: resolve(parsed.data.webDir),
    images: { ...parsed.data.images, cacheDir: resolve(parsed.data.images.cacheDir) },
  };
  return Object.freeze(config);
}

/** `model=input:output,…` (USD per million tokens); a malformed entry is a start-up error naming it. */
function modelPricesFromEnv(
  text: string,
): Record<string, { inputPerMTokUsd: number; outputPerMTokUsd: number }> {
  const prices: Record<string, { inputPerMTokUsd: number; outputPerMTokUsd: number }> = {};
  for (const entry of text
    .split(",")
    .map((e) => e.trim())
    .filter(Boolean)) {
    const match = /^([^=]+)=([0-9.]+):([0-9.]+)$/.exec(entry);
    const [input, output] = [Number(match?.[2]), Number(match?.[3])];
    if (!match || !Number.isFinite(input) || !Number.isFinite(output))
      throw new PolydevError(
        "invalid_request",
        `POLYDEV_MODEL_PRICES entry "${entry}" is not model=input:output (USD per million tokens, e.g. gpt-5=1.25:10)`,
      );
    prices[(match[1] as string).trim()] = { inputPerMTokUsd: input, outputPerMTokUsd: output };
  }
  return prices;
}
