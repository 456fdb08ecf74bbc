/** The settings added for browser sign-in: environment names, defaults and bounds. */
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { configFromEnv, parseConfig } from "./config.js";
import { previewListenAddress } from "./server.js";

const DAY_MS = 24 * 60 * 60 * 1000;

describe("sign-in settings", () => {
  it("default to 7 idle days, 30 days in all, and 5/20 failures per 15 minutes", () => {
    const config = parseConfig({ dataDir: "/tmp/polydev-config-test" });
    expect(config.sessionIdleTimeoutMs).toBe(7 * DAY_MS);
    expect(config.sessionMaxAgeMs).toBe(30 * DAY_MS);
    expect(config.signInThrottle).toEqual({
      maxFailuresPerName: 5,
      maxFailuresPerIp: 20,
      windowMs: 15 * 60_000,
    });
    expect(config.adminPassword).toBeUndefined();
    expect(Object.isFrozen(config)).toBe(true);
  });

  it("come from the environment", () => {
    const input = configFromEnv({
      POLYDEV_ADMIN_PASSWORD: "a-long-enough-password",
      POLYDEV_SESSION_IDLE_TIMEOUT_MS: "60000",
      POLYDEV_SESSION_MAX_AGE_MS: "120000",
      POLYDEV_WEB_DIR: "some/build",
    });
    const config = parseConfig({ ...input, dataDir: "/tmp/polydev-config-test" });
    expect(config.adminPassword).toBe("a-long-enough-password");
    expect(config.sessionIdleTimeoutMs).toBe(60_000);
    expect(config.sessionMaxAgeMs).toBe(120_000);
    expect(config.webDir).toBe(resolve("some/build"));
  });

  it("refuse an admin password shorter than 8 characters, naming the variable", () => {
    expect(() => parseConfig({ dataDir: "/tmp/x", adminPassword: "short" })).toThrow(
      /POLYDEV_ADMIN_PASSWORD/,
    );
    expect(() => parseConfig({ dataDir: "/tmp/x", sessionMaxAgeMs: 0 })).toThrow(/sessionMaxAgeMs/);
  });
});

describe("host uid registry setting", () => {
  it("defaults to /var/lib/polydev/host-uids, outside the data directory", () => {
    expect(parseConfig({ dataDir: "/tmp/polydev-config-test" }).hostUidRegistryDir).toBe(
      "/var/lib/polydev/host-uids",
    );
  });

  it("comes from POLYDEV_HOST_UID_REGISTRY_DIR, made absolute", () => {
    const input = configFromEnv({ POLYDEV_HOST_UID_REGISTRY_DIR: "shared/uids" });
    expect(parseConfig({ ...input, dataDir: "/tmp/x" }).hostUidRegistryDir).toBe(resolve("shared/uids"));
  });
});

describe("inactive stopped sandboxes setting", () => {
  it("defaults to 14 days and comes from POLYDEV_SANDBOX_INACTIVE_DESTROY_DAYS, fractions allowed", () => {
    expect(parseConfig({ dataDir: "/tmp/x" }).sandboxInactiveDestroyDays).toBe(14);
    const input = configFromEnv({ POLYDEV_SANDBOX_INACTIVE_DESTROY_DAYS: "0.5" });
    expect(parseConfig({ ...input, dataDir: "/tmp/x" }).sandboxInactiveDestroyDays).toBe(0.5);
  });

  it("refuses zero, negative and non-numbers, naming the variable", () => {
    for (const value of ["0", "-3", "two weeks"]) {
      const input = configFromEnv({ POLYDEV_SANDBOX_INACTIVE_DESTROY_DAYS: value });
      expect(() => parseConfig({ ...input, dataDir: "/tmp/x" }), value).toThrow(
        /POLYDEV_SANDBOX_INACTIVE_DESTROY_DAYS/,
      );
    }
  });
});

describe("registries pulls may reach on private addresses", () => {
  it("come from POLYDEV_PRIVATE_REGISTRIES (comma-separated), none by default", () => {
    expect(parseConfig({ dataDir: "/tmp/polydev-config-test" }).images.privateRegistries).toEqual([]);
    const input = configFromEnv({ POLYDEV_PRIVATE_REGISTRIES: "registry.lan:5000, 10.0.0.5 ,," });
    expect(parseConfig({ dataDir: "/tmp/polydev-config-test", ...input }).images.privateRegistries).toEqual([
      "registry.lan:5000",
      "10.0.0.5",
    ]);
  });
});

describe("database and bus settings", () => {
  it("default to the SQLite file and the in-process bus", () => {
    const config = parseConfig(configFromEnv({}));
    expect(config.databaseUrl).toBeUndefined();
    expect(config.redisUrl).toBeUndefined();
  });

  it("come from POLYDEV_DATABASE_URL and POLYDEV_REDIS_URL", () => {
    const config = parseConfig(
      configFromEnv({
        POLYDEV_DATABASE_URL: "postgresql://polydev:pw@db.example:5432/polydev?sslmode=verify-full",
        POLYDEV_REDIS_URL: "rediss://:pw@cache.example:6380/2",
        POLYDEV_CLUSTER_SECRET: "0123456789abcdef0123456789abcdef",
      }),
    );
    expect(config.databaseUrl).toBe("postgresql://polydev:pw@db.example:5432/polydev?sslmode=verify-full");
    expect(config.redisUrl).toBe("rediss://:pw@cache.example:6380/2");
  });

  it("refuse Postgres and Redis together without the cluster secret replicas sign forwarded requests with", () => {
    const shared = {
      POLYDEV_DATABASE_URL: "postgres://polydev:pw@db.example/polydev",
      POLYDEV_REDIS_URL: "redis://cache.example:6379",
    };
    expect(() => parseConfig(configFromEnv(shared))).toThrow(
      /POLYDEV_CLUSTER_SECRET is required when POLYDEV_DATABASE_URL and POLYDEV_REDIS_URL are both set/,
    );
    expect(() => parseConfig(configFromEnv({ ...shared, POLYDEV_CLUSTER_SECRET: "short" }))).toThrow(
      /at least 32 characters/,
    );
    // Either alone is one server: no secret needed.
    expect(
      parseConfig(configFromEnv({ POLYDEV_DATABASE_URL: shared.POLYDEV_DATABASE_URL })).clusterSecret,
    ).toBe(undefined);
  });

  it("refuse other schemes naming the variable, without repeating the URL (it may hold a password)", () => {
    const database = () => parseConfig(configFromEnv({ POLYDEV_DATABASE_URL: "mysql://u:s3cret@h/db" }));
    expect(database).toThrow(/POLYDEV_DATABASE_URL must be a postgres:\/\/ or postgresql:\/\/ URL/);
    expect(database).not.toThrow(/s3cret/);
    const redis = () => parseConfig(configFromEnv({ POLYDEV_REDIS_URL: "http://:s3cret@h:6379" }));
    expect(redis).toThrow(/POLYDEV_REDIS_URL must be a redis:\/\/ or rediss:\/\/ URL, or a unix socket path/);
    expect(parseConfig(configFromEnv({ POLYDEV_REDIS_URL: "/run/redis/redis.sock" })).redisUrl).toBe(
      "/run/redis/redis.sock",
    );
    expect(redis).not.toThrow(/s3cret/);
  });
});

describe("identity settings", () => {
  const dataDir = "/tmp/polydev-config-test";

  it("read OIDC issuers from POLYDEV_OIDC_ISSUERS as JSON, with the documented defaults", () => {
    const input = configFromEnv({
      POLYDEV_OIDC_ISSUERS: JSON.stringify([{ issuer: "https://idp.example/realms/a", audience: "polydev" }]),
      POLYDEV_OIDC_KEY_REFETCH_COOLDOWN_MS: "5000",
      POLYDEV_AUDIT_MAX_EVENTS: "1000",
      POLYDEV_AUDIT_RETENTION_DAYS: "30",
    });
    const config = parseConfig({ ...input, dataDir });
    expect(config.oidcIssuers).toEqual([
      {
        issuer: "https://idp.example/realms/a",
        audience: "polydev",
        algorithms: ["RS256", "ES256"],
        subjectClaim: "sub",
        nameClaim: "preferred_username",
        adminValue: "admin",
        clockToleranceMs: 30_000,
      },
    ]);
    expect(config.oidcKeyRefetchCooldownMs).toBe(5000);
    expect(config.auditMaxEvents).toBe(1000);
    expect(config.auditRetentionDays).toBe(30);
    const defaults = parseConfig({ dataDir });
    expect(defaults.oidcIssuers).toEqual([]);
    expect(defaults.auditMaxEvents).toBe(100_000);
  });

  it("refuse broken JSON, symmetric or 'none' algorithms, and a skew over 5 minutes, saying where", () => {
    expect(() => configFromEnv({ POLYDEV_OIDC_ISSUERS: "[{issuer:" })).toThrow(
      /POLYDEV_OIDC_ISSUERS must be a JSON array/,
    );
    const base = { issuer: "https://idp.example", audience: "a" };
    for (const alg of ["HS256", "none"]) {
      expect(() =>
        parseConfig({ dataDir, oidcIssuers: [{ ...base, algorithms: [alg as "RS256"] }] }),
      ).toThrow(/oidcIssuers\.0\.algorithms/);
    }
    expect(() => parseConfig({ dataDir, oidcIssuers: [{ ...base, clockToleranceMs: 600_000 }] })).toThrow(
      /clockToleranceMs/,
    );
    expect(() => parseConfig({ dataDir, oidcIssuers: [{ ...base, issuer: "not a url" }] })).toThrow(/issuer/);
  });
});

describe("observability and quota settings", () => {
  it("take the metrics listener and model prices from the environment, none by default", () => {
    const defaults = parseConfig(configFromEnv({}));
    expect(defaults.metricsListen).toBeUndefined();
    expect(defaults.modelPrices).toEqual({});
    expect(defaults.events).toEqual({ maxStreamsPerUser: 8, maxBufferedBytes: 1024 * 1024 });
    const config = parseConfig(
      configFromEnv({
        POLYDEV_METRICS_LISTEN: "127.0.0.1:9464",
        POLYDEV_MODEL_PRICES: "claude-sonnet-4-5=3:15, gpt-5=1.25:10,*=1:2",
      }),
    );
    expect(config.metricsListen).toBe("127.0.0.1:9464");
    expect(config.modelPrices).toEqual({
      "claude-sonnet-4-5": { inputPerMTokUsd: 3, outputPerMTokUsd: 15 },
      "gpt-5": { inputPerMTokUsd: 1.25, outputPerMTokUsd: 10 },
      "*": { inputPerMTokUsd: 1, outputPerMTokUsd: 2 },
    });
  });

  it("refuse a malformed listen address or price, naming the variable", () => {
    expect(() => parseConfig(configFromEnv({ POLYDEV_METRICS_LISTEN: "9464" }))).toThrow(
      /POLYDEV_METRICS_LISTEN/,
    );
    expect(() => configFromEnv({ POLYDEV_MODEL_PRICES: "gpt-5=cheap" })).toThrow(
      /POLYDEV_MODEL_PRICES entry "gpt-5=cheap"/,
    );
  });
});

describe("the operator's upstream proxy", () => {
  it("takes an http proxy with credentials and refuses what the egress side cannot dial, naming the variable", () => {
    const dataDir = "/tmp/polydev-config-test";
    expect(
      parseConfig({ ...configFromEnv({ POLYDEV_UPSTREAM_PROXY: "http://u:p@proxy:3128" }), dataDir })
        .upstreamProxy,
    ).toBe("http://u:p@proxy:3128");
    for (const unusable of ["https://proxy:3128", "http://proxy:3128/path", "socks5://proxy:1080"]) {
      expect(
        () => parseConfig({ ...configFromEnv({ POLYDEV_UPSTREAM_PROXY: unusable }), dataDir }),
        unusable,
      ).toThrow(/POLYDEV_UPSTREAM_PROXY must be a URL like http:\/\//);
    }
  });
});

describe("preview settings", () => {
  it("default to path mode next to the API, with the documented limits", () => {
    const config = parseConfig({});
    expect(config.preview).toMatchObject({
      linkTtlMs: 5 * 60_000,
      sessionTtlMs: 12 * 60 * 60_000,
      answerTimeoutMs: 30_000,
      maxConnectionsPerSandbox: 64,
    });
    expect(config.preview.listen).toBeUndefined();
    expect(config.preview.domain).toBeUndefined();
    expect(previewListenAddress(config, "127.0.0.1")).toBe("127.0.0.1:7421");
    expect(previewListenAddress(parseConfig({ port: 0 }), "127.0.0.1")).toBe("127.0.0.1:0");
  });

  it("come from the environment, and refuse what they cannot use, naming the variable", () => {
    const config = parseConfig(
      configFromEnv({
        POLYDEV_PREVIEW_LISTEN: "0.0.0.0:8443",
        POLYDEV_PREVIEW_DOMAIN: "Preview.Example.com",
        POLYDEV_PREVIEW_URL: "https://preview.example.com",
        POLYDEV_PREVIEW_SECRET: "s".repeat(32),
      }),
    );
    expect(config.preview).toMatchObject({
      listen: "0.0.0.0:8443",
      domain: "preview.example.com",
      publicUrl: "https://preview.example.com",
    });
    expect(
      previewListenAddress(parseConfig(configFromEnv({ POLYDEV_PREVIEW_LISTEN: "off" })), "h"),
    ).toBeUndefined();
    expect(() => parseConfig(configFromEnv({ POLYDEV_PREVIEW_LISTEN: "8443" }))).toThrow(
      /POLYDEV_PREVIEW_LISTEN/,
    );
    expect(() => parseConfig(configFromEnv({ POLYDEV_PREVIEW_DOMAIN: "*.example.com" }))).toThrow(
      /POLYDEV_PREVIEW_DOMAIN/,
    );
    expect(() => parseConfig(configFromEnv({ POLYDEV_PREVIEW_SECRET: "short" }))).toThrow(
      /POLYDEV_PREVIEW_SECRET/,
    );
  });
});
