import { describe, expect, it } from "vitest";
import { KeyedLock } from "./keyed-lock.js";

/** A piece of work the test finishes by hand, recording when it started. */
function gate(log: string[], name: string) {
  let open: () => void = () => undefined;
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return {
    open,
    work: async () => {
      log.push(`${name} start`);
      await opened;
      log.push(`${name} end`);
      return name;
    },
  };
}

describe("KeyedLock", () => {
  it("runs the work of one key one at a time, in order, even when one fails", async () => {
    const lock = new KeyedLock();
    const log: string[] = [];
    const hibernate = gate(log, "hibernate");
    const resume = gate(log, "resume");
    const first = lock.run("sbx_1", hibernate.work);
    const failing = lock.run("sbx_1", async () => {
      log.push("failing start");
      throw new Error("driver failed");
    });
    const second = lock.run("sbx_1", resume.work);
    await Promise.resolve();
    expect(log).toEqual(["hibernate start"]);
    expect(lock.busy("sbx_1")).toBe(true);
    hibernate.open();
    await expect(first).resolves.toBe("hibernate");
    await expect(failing).rejects.toThrow("driver failed");
    resume.open();
    await expect(second).resolves.toBe("resume");
    expect(log).toEqual(["hibernate start", "hibernate end", "failing start", "resume start", "resume end"]);
    await lock.idle("sbx_1");
    expect(lock.busy("sbx_1")).toBe(false);
  });

  it("does not make different keys wait for each other", async () => {
    const lock = new KeyedLock();
    const log: string[] = [];
    const slow = gate(log, "a");
    const running = lock.run("sbx_a", slow.work);
    await expect(lock.run("sbx_b", async () => "b")).resolves.toBe("b");
    expect(log).toEqual(["a start"]);
    slow.open();
    await running;
  });
});
