/**
 * One spare connection per sandbox to its exec server, made ahead of the next exec: connecting
 * (and the init accepting and forking the relay that will serve it) is then off the exec's
 * critical path. The spare's relay waits, blocked in read(), for its request; it costs the
 * sandbox one process. A spare that hears anything before it is used (the init refused it, say
 * at the process limit) or closes is dropped, never handed out.
 */
import type { Socket } from "node:net";
import { connect } from "node:net";

export class ExecConnections {
  private readonly spares = new Map<string, { path: string; socket: Socket }>();

  /** A connection to the sandbox's exec server: the spare if there is one, then a new spare. */
  take(id: string, path: string): Socket {
    const spare = this.spares.get(id);
    this.spares.delete(id);
    let socket: Socket;
    if (spare && spare.path === path && !spare.socket.destroyed) {
      socket = spare.socket;
      socket.removeAllListeners("data");
      socket.removeAllListeners("close");
      socket.removeAllListeners("error");
      socket.ref();
    } else {
      spare?.socket.destroy();
      socket = connect(path);
    }
    // After this exec's own work has been queued, so the two do not compete.
    setImmediate(() => this.prime(id, path));
    return socket;
  }

  /** Makes sure a spare exists (e.g. right after the sandbox started). */
  prime(id: string, path: string): void {
    if (this.spares.has(id)) return;
    const socket = connect(path);
    // A spare never keeps the process alive, and only its own exec server ever answers it.
    socket.unref();
    const drop = (): void => {
      socket.destroy();
      if (this.spares.get(id)?.socket === socket) this.spares.delete(id);
    };
    socket.once("data", drop);
    socket.once("close", drop);
    socket.once("error", drop);
    this.spares.set(id, { path, socket });
  }

  /** Closes the sandbox's spare (its relay then exits). */
  forget(id: string): void {
    this.spares.get(id)?.socket.destroy();
    this.spares.delete(id);
  }
}
