import { openRedisBus } from "@polydev/bus-redis";
import { type Bus, InProcessBus } from "@polydev/core";
import type { Logger } from "pino";
import type { PolydevConfig } from "../config.js";

/** Redis when `redisUrl` is set (replicas share it), else this process's own bus. */
export async function openConfiguredBus(config: Pick<PolydevConfig, "redisUrl">, log: Logger): Promise<Bus> {
  if (config.redisUrl === undefined) return new InProcessBus();
  return openRedisBus({
    url: config.redisUrl,
    // ioredis reconnects by itself; each failure is worth a line, never a crash.
    onError: (error) => log.warn({ err: error }, "the Redis connection failed"),
  });
}
