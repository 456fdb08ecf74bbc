export type { RedisBusOptions } from "./redis-bus.js";
export { openRedisBus, RedisBus } from "./redis-bus.js";
