/**
 * Starts bubblewrap without forking the server on a create's critical path. Forking a large
 * Node process costs milliseconds (its page tables are copied: 2-4 ms for the server here), so
 * processes of the exec server binary in `--join-from-stdin` mode wait, spawned ahead of time
 * with the pipes the readiness handshake reads (stdout, and fd 3 for bubblewrap's info). A
 * create hands one its arguments on stdin; it opens the sandbox's files as root onto fixed
 * descriptors, joins the cgroups, drops to the sandbox's uid and execs bubblewrap, so the
 * ChildProcess the driver holds *is* bubblewrap.
 *
 * Used starters are replaced when a sandbox is destroyed (the destroy pays for the next
 * create's fork) or once the driver has been quiet for a moment (no create for
 * REFILL_AFTER_QUIET_MS): a refill is itself such a fork, and done right after a create it would
 * stall the very requests (its first exec) it is meant to speed up. When none is waiting (a
 * burst of creates), a create spawns its own, as it would without this.
 */
import type { ChildProcess } from "node:child_process";
import { spawn } from "node:child_process";
import { Socket } from "node:net";

/** Waiting starters kept (each a small idle process outside any sandbox). */
const POOL_SIZE = 2;
const REFILL_AFTER_QUIET_MS = 50;

export class BwrapStarters {
  private readonly waiting: ChildProcess[] = [];
  private refillTimer: NodeJS.Timeout | undefined;

  constructor(private readonly binary: string) {}

  /** `args` as join_from_stdin in exec-server.c reads them. */
  start(args: string[]): ChildProcess {
    let child: ChildProcess | undefined;
    while (child === undefined && this.waiting.length > 0) {
      const candidate = this.waiting.shift();
      if (candidate && candidate.exitCode === null && candidate.signalCode === null && candidate.stdin) {
        child = candidate;
      } else {
        candidate?.kill("SIGKILL");
      }
    }
    child ??= this.spawnWaiting();
    for (const stream of [child.stdout, child.stdio[3]]) if (stream instanceof Socket) stream.ref();
    child.stdin?.end(`${args.join("\0")}\0`);
    this.refillWhenQuiet();
    return child;
  }

  /** Fills the pool now (at start-up, before any create). */
  fill(): void {
    while (this.waiting.length < POOL_SIZE) {
      const child = this.spawnWaiting();
      child.once("error", () => this.drop(child));
      child.once("exit", () => this.drop(child));
      // A waiting starter never keeps the server alive; it exits when its stdin closes.
      for (const stream of [child.stdin, child.stdout, child.stdio[3]])
        if (stream instanceof Socket) stream.unref();
      this.waiting.push(child);
    }
  }

  /** (Re)arms the refill: it runs once no create has come for a moment. */
  refillWhenQuiet(): void {
    if (this.refillTimer !== undefined) clearTimeout(this.refillTimer);
    this.refillTimer = setTimeout(() => {
      this.refillTimer = undefined;
      this.fill();
    }, REFILL_AFTER_QUIET_MS);
    this.refillTimer.unref();
  }

  private drop(child: ChildProcess): void {
    const index = this.waiting.indexOf(child);
    if (index >= 0) this.waiting.splice(index, 1);
  }

  private spawnWaiting(): ChildProcess {
    const child = spawn(this.binary, ["--join-from-stdin"], {
      env: { PATH: "/usr/bin:/bin" },
      // stderr becomes the sandbox's console log once the arguments are known.
      stdio: ["pipe", "pipe", "ignore", "pipe"],
      // Its own session, no --die-with-parent: sandboxes outlive a server restart and are
      // re-adopted from their meta.json.
      detached: true,
    });
    child.stdin?.on("error", () => undefined);
    child.unref();
    return child;
  }
}
