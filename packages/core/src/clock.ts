/** Time as a port, so lifecycle rules (TTL, idle timeouts, stuck transitions) can be tested. */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };
