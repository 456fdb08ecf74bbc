/**
 * The host's side of an allow-list sandbox's relay (native/egress-relay.c): the unix socket
 * `egress.sock` in the sandbox's exec directory, and the relay started through the init. Each
 * connection to the socket is one intercepted TCP connection or DNS message and starts with one
 * line, `tcp|dns <address> <port>\n`. Anything in the sandbox may connect to that socket and
 * name any destination (as it could by connecting to that destination), so the line is read
 * strictly: bounded, within a time limit, a real IP address and port; else the connection is
 * closed without a word. What the destination may be is the caller's decision, never this one's.
 */
import { isIP, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { EgressDestination, LaunchedProcess, PortListener } from "@polydev/core";
import { PolydevError } from "@polydev/core";
import { EGRESS_RELAY_DNS_PORT, EGRESS_RELAY_TCP_PORT } from "./egress-allowlist.js";
import { listenThroughHelper } from "./sandbox-ports.js";

/** Longer than any line the relay writes ("dns " + an IPv6 address + " 65535\n" fits). */
const MAX_HEADER_BYTES = 64;
/** The relay writes the line as it connects; a connection silent for this long is dropped. */
const HEADER_TIMEOUT_MS = 10_000;
const HEADER = /^(tcp|dns) ([0-9A-Fa-f.:]{2,45}) (0|[1-9][0-9]{0,4})$/;

export class SandboxEgress {
  constructor(
    private readonly helper: (args: string[]) => LaunchedProcess,
    private readonly execDir: string,
    private readonly hostUid: number,
  ) {}

  intercept(
    onConnection: (socket: Duplex, destination: EgressDestination) => void,
    signal?: AbortSignal,
  ): Promise<PortListener> {
    return listenThroughHelper({
      helper: this.helper,
      execDir: this.execDir,
      hostUid: this.hostUid,
      name: "egress.sock",
      args: (path) => ["--egress-relay", String(EGRESS_RELAY_TCP_PORT), String(EGRESS_RELAY_DNS_PORT), path],
      onConnection: (socket) => {
        readHeader(socket)
          .then((destination) => {
            if (destination === undefined) socket.destroy();
            else onConnection(socket, destination);
          })
          .catch(() => socket.destroy());
      },
      notReady: () =>
        new PolydevError(
          "conflict",
          `cannot intercept the sandbox's network: ports ${EGRESS_RELAY_TCP_PORT} and ${EGRESS_RELAY_DNS_PORT} on its loopback are taken`,
        ),
      signal,
    });
  }
}

/** Parses one header line: a destination, or undefined for anything malformed. */
export function parseEgressHeader(line: string): EgressDestination | undefined {
  const match = HEADER.exec(line);
  if (match === null) return undefined;
  const [, kind, address, portText] = match;
  if ((kind !== "tcp" && kind !== "dns") || address === undefined || isIP(address) === 0) return undefined;
  const port = Number(portText);
  if (!Number.isInteger(port) || port > 65535) return undefined;
  return { kind, address, port };
}

/**
 * Takes the header line off the socket (what follows it is put back for the caller) and parses
 * it; undefined when the connection ends, stalls or says something else.
 */
function readHeader(socket: Socket): Promise<EgressDestination | undefined> {
  return new Promise((resolve) => {
    let taken = Buffer.alloc(0);
    const finish = (destination: EgressDestination | undefined, rest?: Buffer): void => {
      clearTimeout(timer);
      socket.off("readable", onReadable);
      socket.off("end", onEnd);
      socket.off("close", onEnd);
      if (rest !== undefined && rest.length > 0) socket.unshift(rest);
      resolve(destination);
    };
    const onEnd = (): void => finish(undefined);
    const onReadable = (): void => {
      for (;;) {
        const chunk: Buffer | null = socket.read();
        if (chunk === null) return;
        taken = Buffer.concat([taken, chunk]);
        const newline = taken.indexOf(0x0a);
        if (newline >= 0 && newline <= MAX_HEADER_BYTES) {
          finish(
            parseEgressHeader(taken.subarray(0, newline).toString("latin1")),
            taken.subarray(newline + 1),
          );
          return;
        }
        if (newline >= 0 || taken.length > MAX_HEADER_BYTES) {
          finish(undefined);
          return;
        }
      }
    };
    const timer = setTimeout(onEnd, HEADER_TIMEOUT_MS);
    socket.on("readable", onReadable);
    socket.once("end", onEnd);
    socket.once("close", onEnd);
    onReadable();
  });
}
