import type { ChildProcess } from "node:child_process";

export interface Ready {
  bwrapPid: number;
  /** Host pid of the sandbox's init (its pid 1), the target of every nsenter. */
  initPid: number;
}

/**
 * The readiness handshake, with no sleeps: bubblewrap reports the sandbox's pid 1 on its info
 * fd as soon as it has cloned it, and the init prints `ready` on stdout only once the whole root
 * is built and it runs inside it. Both are needed before anyone may nsenter.
 */
export function waitUntilReady(
  bwrap: ChildProcess,
  options: {
    timeoutMs: number;
    signal?: AbortSignal | undefined;
    /** Called as soon as the init's pid is known, so a failed start can still kill it first. */
    onInitPid(pid: number): void;
  },
): Promise<Ready> {
  const { timeoutMs, signal } = options;
  return new Promise((resolve, reject) => {
    let info = "";
    let stdout = "";
    let initPid: number | undefined;
    let printedReady = false;
    const timer = setTimeout(() => finish(new Error(`not ready after ${timeoutMs} ms`)), timeoutMs);
    const onAbort = (): void => finish(new Error("aborted"));
    const finish = (error?: Error): void => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      bwrap.stdio[3]?.destroy();
      bwrap.stdout?.destroy();
      bwrap.removeAllListeners("exit");
      if (error) reject(error);
      else if (bwrap.pid !== undefined && initPid !== undefined) resolve({ bwrapPid: bwrap.pid, initPid });
    };
    const check = (): void => {
      if (initPid !== undefined && printedReady) finish();
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    bwrap.stdio[3]?.on("data", (chunk: Buffer) => {
      info += chunk.toString();
      const match = /"child-pid"\s*:\s*(\d+)/.exec(info);
      if (match?.[1] !== undefined) {
        initPid = Number(match[1]);
        options.onInitPid(initPid);
        check();
      }
    });
    bwrap.stdout?.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
      if (stdout.includes("ready\n")) {
        printedReady = true;
        check();
      }
    });
    bwrap.once("error", (error) => finish(error));
    bwrap.once("exit", (code, exitSignal) =>
      finish(new Error(`bubblewrap exited (${exitSignal ?? code}) before the sandbox was ready`)),
    );
  });
}
