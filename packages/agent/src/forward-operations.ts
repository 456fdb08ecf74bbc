/**
 * forward.*: TCP connections on the sandbox's loopback carried as channels, the two directions
 * of SSH's connection protocol (RFC 4254 §7). `forward.in` connects to a port inside the sandbox
 * (direct-tcpip: preview URLs); `forward.out` listens on one and opens a `forward.accepted`
 * channel towards the client for every connection made to it (remote forwarding: the provider
 * gateway, policed egress). Every byte moves within the channel windows, so a slow side holds the
 * other back and nothing grows beyond one window per direction.
 */
import { isIP } from "node:net";
import type { Duplex } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { EgressDestination, PortListener } from "@polydev/core";
import { PolydevError } from "@polydev/core";
import type { Channel, ControlMessage } from "./channel.js";
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

/**
 * Serves a listener of the launcher (`start` hands it the connection callback): every connection
 * opens a `forward.accepted` channel towards the client naming this listener, with `extra`
 * fields (an intercepted connection's destination).
 */
async function serveListener(
  { openChannel }: { openChannel: (request: ControlMessage) => Channel },
  channel: Channel,
  start: (onConnection: (socket: Duplex, extra?: Record<string, unknown>) => void) => Promise<PortListener>,
): Promise<void> {
  const open = new Set<Channel>();
  const listener = await start((socket, extra) => {
    if (channel.closed || open.size >= MAX_FORWARDED_CONNECTIONS) {
      socket.destroy();
      return;
    }
    const accepted = openChannel({ type: "forward.accepted", listener: channel.id, ...extra });
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
}

export const forwardOutOperation: Operation = async (context, channel, request) => {
  const port = portField(request);
  await serveListener(context, channel, (onConnection) => context.launcher.listen(port, onConnection));
};

/**
 * egress.intercept: the outbound connections of an allow-list sandbox, each as a
 * `forward.accepted` channel carrying `destination` ({kind, address, port}).
 */
export const egressInterceptOperation: Operation = async (context, channel) => {
  const { launcher } = context;
  if (launcher.interceptEgress === undefined) {
    throw new PolydevError(
      "feature_unavailable",
      'this sandbox\'s driver cannot intercept its network: use network "none" or "egress"',
    );
  }
  const intercept = launcher.interceptEgress.bind(launcher);
  await serveListener(context, channel, (onConnection) =>
    intercept((socket, destination) => onConnection(socket, { destination })),
  );
};

/** The destination an `egress.intercept` listener's accepted channel names (client side). */
export function acceptedDestination(request: { [field: string]: unknown }): EgressDestination | undefined {
  const value = request.destination;
  if (typeof value !== "object" || value === null) return undefined;
  const { kind, address, port } = value as Record<string, unknown>;
  if (kind !== "tcp" && kind !== "dns") return undefined;
  if (typeof address !== "string" || isIP(address) === 0) return undefined;
  if (typeof port !== "number" || !Number.isInteger(port) || port < 0 || port > 65535) return undefined;
  return { kind, address, port };
}

/** Which listener an accepted connection belongs to (client side). */
export function acceptedListener(request: { [field: string]: unknown }): number | undefined {
  const value = request.listener;
  return typeof value === "number" && Number.isInteger(value) ? value : undefined;
}
