/**
 * One operation at a time per sandbox within a driver: a destroy that arrives during a
 * checkpoint or restore waits for it instead of removing the directory runsc is writing into
 * (which would leave a stray checkpoint or container behind).
 */
export class SandboxLocks {
  private readonly tails = new Map<string, Promise<void>>();

  async run<T>(sandboxId: string, operation: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(sandboxId) ?? Promise.resolve();
    let release = (): void => undefined;
    const tail = new Promise<void>((resolve) => {
      release = resolve;
    });
    const chained = previous.then(() => tail);
    this.tails.set(sandboxId, chained);
    try {
      await previous;
      return await operation();
    } finally {
      release();
      if (this.tails.get(sandboxId) === chained) this.tails.delete(sandboxId);
    }
  }
}
