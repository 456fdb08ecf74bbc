/**
 * Idle connections to each sandbox's exec server, so an exec neither connects nor waits for the
 * init to fork the relay that serves it. A relay serves one process after another on its
 * connection (see serve_one in exec-server.c): after a process's exit frame the host says 'D'
 * and puts the connection back here. Each idle relay waits, blocked in read(), and costs the
 * sandbox one process; at most MAX_IDLE are kept per sandbox. A connection that hears anything
 * while idle (the init refused it, say at the process limit) or closes is dropped, never used.
 */
import type { Socket } from "node:net";
import { connect } from "node:net";

const MAX_IDLE = 2;

interface Idle {
  path: string;
  socket: Socket;
}

export class ExecConnections {
  private readonly idle = new Map<string, Idle[]>();

  /** A connection to the sandbox's exec server: an idle one if there is one, else a new one. */
  take(id: string, path: string): Socket {
    const list = this.idle.get(id) ?? [];
    let socket: Socket | undefined;
    while (socket === undefined && list.length > 0) {
      const candidate = list.shift();
      if (candidate && candidate.path === path && !candidate.socket.destroyed) {
        socket = candidate.socket;
        socket.removeAllListeners("data");
        socket.removeAllListeners("close");
        socket.removeAllListeners("error");
        socket.ref();
      } else {
        candidate?.socket.destroy();
      }
    }
    // None left for the next exec: make one after this exec's own work has been queued.
    if (list.length === 0) setImmediate(() => this.prime(id, path));
    return socket ?? connect(path);
  }

  /** Keeps a connection whose process has exited (and which was told 'D') for the next exec. */
  release(id: string, path: string, socket: Socket): void {
    const list = this.idle.get(id) ?? [];
    if (socket.destroyed || list.length >= MAX_IDLE) {
      socket.destroy();
      return;
    }
    this.keep(id, path, socket, list);
  }

  /** Makes sure an idle connection exists (e.g. right after the sandbox started). */
  prime(id: string, path: string): void {
    const list = this.idle.get(id) ?? [];
    if (list.length > 0) return;
    this.keep(id, path, connect(path), list);
  }

  /** Closes the sandbox's idle connections (their relays then exit). */
  forget(id: string): void {
    for (const { socket } of this.idle.get(id) ?? []) socket.destroy();
    this.idle.delete(id);
  }

  private keep(id: string, path: string, socket: Socket, list: Idle[]): void {
    // An idle connection never keeps the process alive, and only its own exec server answers it.
    socket.unref();
    const drop = (): void => {
      socket.destroy();
      const current = this.idle.get(id);
      const index = current?.findIndex((entry) => entry.socket === socket) ?? -1;
      if (current && index >= 0) current.splice(index, 1);
    };
    socket.once("data", drop);
    socket.once("close", drop);
    socket.once("error", drop);
    socket.resume();
    list.push({ path, socket });
    this.idle.set(id, list);
  }
}
