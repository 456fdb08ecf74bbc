/**
 * How many VMs restore and activate at once. Under TCG a restore and its activation are seconds
 * of CPU each: twenty at once on two cores all ran past their answer's deadline (the bench's 20
 * concurrent creates failed 20 of 20), where in turns each finishes in seconds. Waiting for a
 * turn is not counted against a VM's deadline.
 */
export class RestoreSlots {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly size: number) {}

  /** Resolves with the slot's release (idempotent) once one is free. */
  async acquire(signal?: AbortSignal): Promise<() => void> {
    if (this.active >= this.size) {
      await new Promise<void>((resolve, reject) => {
        const turn = (): void => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        };
        const onAbort = (): void => {
          const at = this.waiting.indexOf(turn);
          if (at >= 0) this.waiting.splice(at, 1);
          reject(signal?.reason ?? new Error("aborted"));
        };
        this.waiting.push(turn);
        signal?.addEventListener("abort", onAbort, { once: true });
      });
    } else {
      this.active += 1;
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      // The slot passes straight to the next in line (`active` unchanged), or frees up.
      if (next) next();
      else this.active -= 1;
    };
  }
}
