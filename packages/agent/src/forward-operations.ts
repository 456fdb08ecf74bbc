/**
 * forward.*: TCP connections on the sandbox's loopback carried as channels, the two directions
 * of SSH's connection protocol (RFC 4254 §7). `forward.in` connects to a port inside the sandbox
 * (direct-tcpip: preview URLs); `forward.out` listens on one and opens a `forward.accepted`
 * channel towards the client for every connection made to it (remote forwarding: the provider
 * gateway, policed egress). Every byte moves within the channel windows, so a slow side holds the
 * other back and nothing grows beyond one window per direction.
 */
import type { Duplex } from "node:stream";
import { pipeline } from "node:stream/promises";
import { PolydevError } from "@polydev/core";
import type { Channel } from "./channel.js";
import { ChannelSocket } from "./channel-socket.js";
import type { Operation } from "./operation.js";

/** Connections one listener may have open at once; more are refused (closed) on arrival. */
export const MAX_FORWARDED_CONNECTIONS = 64;

function portField(request: { [field: string]: unknown }): number {
  const port = request.port;
  if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new PolydevError("invalid_request", "port must be a TCP port number (1-65535)");
  }
  return port;
}

/** Copies both ways between a sandbox-side socket and a channel until both directions end. */
function bridge(socket: Duplex, channel: Channel): void {
  const end = new ChannelSocket(channel, "agent");
  socket.on("error", () => undefined);
  end.on("error", () => undefined);
  const done = (): void => {
    socket.destroy();
    end.destroy();
  };
  void Promise.allSettled([pipeline(socket, end), pipeline(end, socket)]).then(done, done);
  channel.once("close", done);
}

export const forwardInOperation: Operation = async ({ launcher }, channel, request) => {
  const port = portField(request);
  const stopped = new AbortController();
  channel.once("close", () => stopped.abort());
  const socket = await launcher.connect(port, stopped.signal);
  if (channel.closed) {
    socket.destroy();
    return;
  }
  channel.control({ type: "started" });
  bridge(socket, channel);
};

export const forwardOutOperation: Operation = async ({ launcher, openChannel }, channel, request) => {
  const port = portField(request);
  const open = new Set<Channel>();
  const listener = await launcher.listen(port, (socket) => {
    if (channel.closed || open.size >= MAX_FORWARDED_CONNECTIONS) {
      socket.destroy();
      return;
    }
    const accepted = openChannel({ type: "forward.accepted", listener: channel.id });
    open.add(accepted);
    accepted.once("close", () => open.delete(accepted));
    bridge(socket, accepted);
  });
  if (channel.closed) {
    listener.close();
    return;
  }
  channel.once("close", () => listener.close());
  listener.closed.then(() => channel.close()).catch(() => undefined);
  channel.control({ type: "started" });
};

/** Which listener an accepted connection belongs to (client side). */
export function acceptedListener(request: { [field: string]: unknown }): number | undefined {
  const value = request.listener;
  return typeof value === "number" && Number.isInteger(value) ? value : undefined;
}
