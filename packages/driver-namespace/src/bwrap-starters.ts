/**
 * Starts bubblewrap without forking the server on a create's critical path. Forking a large
 * Node process costs milliseconds (its page tables are copied), so one process of the exec
 * server binary in `--join-from-stdin` mode is always waiting, spawned ahead of time with the
 * pipes the readiness handshake reads (stdout, and fd 3 for bubblewrap's info). A create hands
 * it its arguments on stdin; it opens the sandbox's files as root onto fixed descriptors,
 * joins the cgroups, drops to the sandbox's uid and execs bubblewrap, so the ChildProcess the
 * driver holds *is* bubblewrap. Then the next one is spawned, off the critical path.
 */
import type { ChildProcess } from "node:child_process";
import { spawn } from "node:child_process";
import { Socket } from "node:net";

export class BwrapStarters {
  private spare: ChildProcess | undefined;

  constructor(private readonly binary: string) {}

  /** `args` as join_from_stdin in exec-server.c reads them. */
  start(args: string[]): ChildProcess {
    let child = this.spare;
    this.spare = undefined;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null || child.stdin === null) {
      child?.kill("SIGKILL");
      child = this.spawnWaiting();
    }
    for (const stream of [child.stdout, child.stdio[3]]) if (stream instanceof Socket) stream.ref();
    child.stdin?.end(`${args.join("\0")}\0`);
    setImmediate(() => this.prepare());
    return child;
  }

  /** Makes sure one starter is waiting. */
  prepare(): void {
    if (this.spare !== undefined && this.spare.exitCode === null) return;
    const child = this.spawnWaiting();
    child.once("error", () => {
      if (this.spare === child) this.spare = undefined;
    });
    // A waiting starter never keeps the server alive; it exits when its stdin closes.
    for (const stream of [child.stdin, child.stdout, child.stdio[3]])
      if (stream instanceof Socket) stream.unref();
    this.spare = child;
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
