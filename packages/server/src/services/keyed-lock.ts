/**
 * Runs async work one at a time per key, in the order it was asked for; different keys do not
 * wait for each other. A failed piece of work releases the key like a finished one.
 * In-process only: it serialises the lifecycle operations of one sandbox within one server.
 */
export class KeyedLock {
  private readonly tails = new Map<string, Promise<void>>();

  run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    const result = previous.then(work);
    const release = (): void => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    };
    // Never rejects: the next piece of work waits for this one, not for its success.
    const tail: Promise<void> = result.then(release, release);
    this.tails.set(key, tail);
    return result;
  }

  /** Resolves once the work queued for `key` so far has finished. */
  idle(key: string): Promise<void> {
    return this.tails.get(key) ?? Promise.resolve();
  }

  /** Whether work for `key` is running or queued. */
  busy(key: string): boolean {
    return this.tails.has(key);
  }
}
