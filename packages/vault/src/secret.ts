import { inspect } from "node:util";

/**
 * A secret in memory. Logging it, serializing it or putting it in a template shows
 * `[redacted]`; only `reveal()` gives the value, so every use of the plaintext is explicit.
 */
export class Secret {
  readonly #value: string;

  constructor(value: string) {
    this.#value = value;
  }

  reveal(): string {
    return this.#value;
  }

  toJSON(): string {
    return "[redacted]";
  }

  toString(): string {
    return "[redacted]";
  }

  [inspect.custom](): string {
    return "Secret([redacted])";
  }
}
