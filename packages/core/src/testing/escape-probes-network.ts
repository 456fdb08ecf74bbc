/**
 * network.*: "none" has only loopback and reaches nothing of the host; "egress" reaches the
 * outside but not the host's loopback, link-local metadata, IPv6 or another sandbox; neither
 * mode gets raw sockets or may reconfigure its network.
 */
import { connect as tcpConnect } from "node:net";
import { networkInterfaces } from "node:os";
import { expect } from "vitest";
import type { AgentConnection, EgressDestination } from "../agent.js";
import { PolydevError } from "../errors.js";
import type { EscapeProbe, EscapeProbeContext, LiveSandbox } from "./escape-probe-context.js";
import { randomPort } from "./escape-probe-helpers.js";
import { CONNECT_SCRIPT, probeProgram } from "./escape-probe-scripts.js";
import type { ProbeServer } from "./host-probes.js";
import { startProbeServer } from "./host-probes.js";
import { waitFor } from "./run-command.js";

const METADATA_ADDRESS = "169.254.169.254";

function hostAddresses(family: "IPv4" | "IPv6"): string[] {
  return Object.values(networkInterfaces())
    .flat()
    .filter((address) => address !== undefined && address.family === family)
    .map((address) => address?.address ?? "")
    .filter((address) => address.length > 0 && !address.toLowerCase().startsWith("fe80"));
}

async function withProbeServers<T>(hosts: string[], use: (servers: ProbeServer[]) => Promise<T>): Promise<T> {
  const servers: ProbeServer[] = [];
  try {
    for (const host of hosts) {
      const server = await startProbeServer(host).catch(() => undefined);
      if (server) servers.push(server);
    }
    return await use(servers);
  } finally {
    for (const server of servers) await server.close();
  }
}

async function connectFrom(
  context: EscapeProbeContext,
  connection: AgentConnection,
  targets: [string, number][],
): Promise<Record<string, string>> {
  return context.python<Record<string, string>>(connection, CONNECT_SCRIPT, { targets, timeoutSec: 3 });
}

function expectNoneConnected(results: Record<string, string>, servers: ProbeServer[]): void {
  const connected = Object.entries(results).filter(([, result]) => result.startsWith("connected"));
  expect(connected, "connections that got through").toEqual([]);
  expect(
    servers.map((server) => server.connections()),
    "connections the host's probe servers saw",
  ).toEqual(servers.map(() => 0));
}

/** Whether the host itself reaches `address:port` (decides whether a probe can tell anything). */
function hostReaches(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tcpConnect({ host: address, port, timeout: 2000 });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("timeout", () => {
      socket.destroy();
      resolve(false);
    });
    socket.once("error", () => resolve(false));
  });
}

/**
 * An allow-list sandbox whose intercepted connections are all refused (closed at once), as the
 * server does with a destination its policy denies; `skip` when the driver has no such mode.
 */
async function withRefusingAllowlist(
  context: EscapeProbeContext,
  skip: (why: string) => void,
  use: (sandbox: LiveSandbox, intercepted: EgressDestination[]) => Promise<void>,
): Promise<void> {
  try {
    await context.withSandbox("allowlist", { network: "allowlist" }, async (sandbox) => {
      const intercepted: EgressDestination[] = [];
      const listener = await sandbox.connection.interceptEgress((socket, destination) => {
        intercepted.push(destination);
        socket.destroy();
      });
      try {
        await use(sandbox, intercepted);
      } finally {
        listener.close();
      }
    });
  } catch (error) {
    if (
      error instanceof PolydevError &&
      (error.code === "driver_unavailable" || error.code === "feature_unavailable")
    )
      skip(`this driver has no network "allowlist": ${error.message}`);
    throw error;
  }
}

const RAW_SOCKETS = probeProgram(`
out = {}
for name, family, kind, proto in (
    ("AF_PACKET raw", 17, socket.SOCK_RAW, 0x0300),
    ("AF_PACKET dgram", 17, socket.SOCK_DGRAM, 0x0300),
    ("AF_INET raw icmp", socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP),
    ("AF_INET raw", socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW),
    ("AF_INET6 raw", socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW),
):
    try:
        s = socket.socket(family, kind, proto)
        s.close()
        out[name] = "created"
    except OSError as error:
        out[name] = errname(error.errno)
emit(out)`);

export const networkProbes: EscapeProbe[] = [
  {
    id: "network.none-only-loopback",
    title: 'network "none" has only the loopback interface, without IPv6 addresses beyond ::1',
    async run(context) {
      const { connection } = await context.sandbox("a");
      const seen = await context.sh(
        connection,
        "tail -n +3 /proc/net/dev | cut -d: -f1; echo --; cat /proc/net/if_inet6 2>/dev/null",
      );
      const [links = "", inet6 = ""] = seen.stdout.split("--\n");
      expect(
        links
          .split("\n")
          .map((line) => line.trim())
          .filter(Boolean),
      ).toEqual(["lo"]);
      for (const line of inet6.split("\n").filter(Boolean))
        expect(line.trim().split(/\s+/).at(-1)).toBe("lo");
    },
  },
  {
    id: "network.none-host-loopback",
    title: 'network "none" cannot reach a service on the host\'s loopback (IPv4 and IPv6)',
    async run(context) {
      const { connection } = await context.sandbox("a");
      await withProbeServers(["127.0.0.1", "::1"], async (servers) => {
        const targets = servers.map((server, index): [string, number] => [
          index === 0 ? "127.0.0.1" : "::1",
          server.port,
        ]);
        expectNoneConnected(await connectFrom(context, connection, targets), servers);
      });
    },
  },
  {
    id: "network.none-host-addresses",
    title: 'network "none" cannot reach a service on any of the host\'s addresses',
    async run(context) {
      const { connection } = await context.sandbox("a");
      await withProbeServers(["0.0.0.0", "::"], async (servers) => {
        const targets: [string, number][] = [];
        for (const server of servers) {
          for (const address of [...hostAddresses("IPv4"), ...hostAddresses("IPv6"), "10.0.2.2"]) {
            targets.push([address, server.port]);
          }
        }
        expectNoneConnected(await connectFrom(context, connection, targets), servers);
      });
    },
  },
  {
    id: "network.egress-host-loopback",
    title: 'network "egress" cannot reach the host\'s loopback (10.0.2.2, 127.0.0.1, ::1)',
    async run(context) {
      const { connection } = await context.sandbox("egress");
      await withProbeServers(["127.0.0.1", "::1"], async (servers) => {
        const targets: [string, number][] = servers.flatMap((server): [string, number][] => [
          ["10.0.2.2", server.port],
          ["127.0.0.1", server.port],
          ["::1", server.port],
          ["fd00::2", server.port],
        ]);
        expectNoneConnected(await connectFrom(context, connection, targets), servers);
      });
    },
  },
  {
    id: "network.egress-link-local-metadata",
    title: `network "egress" cannot reach link-local metadata (${METADATA_ADDRESS})`,
    async run(context, skip) {
      if (!(await hostReaches(METADATA_ADDRESS, 80))) {
        skip(
          `nothing answers on ${METADATA_ADDRESS}:80 from this host, and a probe server there would need the address added outside a test netns`,
        );
      }
      const { connection } = await context.sandbox("egress");
      const seen = await connectFrom(context, connection, [
        [METADATA_ADDRESS, 80],
        ["169.254.170.2", 80],
      ]);
      expect(seen[`${METADATA_ADDRESS}:80`], "the host's metadata service answered a sandbox").not.toMatch(
        /^connected/,
      );
    },
  },
  {
    id: "network.egress-ipv6",
    title: 'network "egress" has no IPv6 route: no host or outside address is reachable over it',
    async run(context) {
      const { connection } = await context.sandbox("egress");
      await withProbeServers(["::"], async (servers) => {
        const targets: [string, number][] = servers.flatMap((server) =>
          [...hostAddresses("IPv6"), "::1", "fd00::2", "fd00::3"].map((address): [string, number] => [
            address,
            server.port,
          ]),
        );
        expectNoneConnected(await connectFrom(context, connection, targets), servers);
      });
    },
  },
  {
    id: "network.egress-other-sandbox",
    title: 'an "egress" sandbox cannot reach a service in another "egress" sandbox',
    async run(context) {
      const first = await context.sandbox("egress");
      const second = await context.sandbox("egress2");
      const port = randomPort();
      const note = `/tmp/polydev-egress-${port}`;
      const listener = await first.connection.startBackground({
        argv: [
          "python3",
          "-c",
          `import socket
s = socket.socket(); s.bind(("0.0.0.0", ${port})); s.listen(8)
open("${note}.ready", "w").close()
while True:
    c, _ = s.accept(); open("${note}", "a").write("accepted\\n"); c.close()`,
        ],
      });
      try {
        await waitFor("the listener", async () =>
          (await context.sh(first.connection, `test -e ${note}.ready && echo yes`)).stdout === "yes\n"
            ? true
            : undefined,
        );
        const targets: [string, number][] = [
          "10.0.2.100",
          "10.0.2.2",
          "10.0.2.15",
          ...hostAddresses("IPv4"),
        ].map((address): [string, number] => [address, port]);
        const seen = await connectFrom(context, second.connection, targets);
        expect(Object.entries(seen).filter(([, result]) => result.startsWith("connected"))).toEqual([]);
        expect((await context.sh(first.connection, `cat ${note} 2>/dev/null; echo end`)).stdout).toBe(
          "end\n",
        );
      } finally {
        await first.connection.signalBackground(listener.id, "SIGKILL").catch(() => undefined);
      }
    },
  },
  {
    id: "network.raw-sockets",
    title: "no raw or packet sockets, in either network mode",
    async run(context) {
      for (const name of ["a", "egress"] as const) {
        const { connection } = await context.sandbox(name);
        const seen = await context.python<Record<string, string>>(connection, RAW_SOCKETS);
        expect(
          Object.entries(seen).filter(([, result]) => result === "created"),
          `raw sockets in sandbox ${name}`,
        ).toEqual([]);
      }
    },
  },
  {
    id: "network.no-net-admin",
    title: "interfaces, addresses and routes cannot be changed",
    async run(context) {
      const { connection } = await context.sandbox("egress");
      const before = await context.sh(connection, "cat /proc/net/route /proc/net/dev | cut -c1-60");
      const attempts = await context.sh(
        connection,
        [
          "/usr/sbin/ip link set lo down",
          "/usr/sbin/ip addr add 10.9.9.9/32 dev lo",
          "/usr/sbin/ip route add 10.9.9.0/24 dev lo",
          "/usr/sbin/ip link add polydev0 type dummy",
          "/usr/sbin/ip link set tap0 mtu 1280",
        ]
          .map((command) => `${command} 2>/dev/null && echo "allowed: ${command}"`)
          .join("; ")
          .concat("; echo end"),
      );
      expect(attempts.stdout).toBe("end\n");
      const after = await context.sh(connection, "cat /proc/net/route /proc/net/dev | cut -c1-60");
      expect(after.stdout.split("\n").map((line) => line.split(/\s+/)[0])).toEqual(
        before.stdout.split("\n").map((line) => line.split(/\s+/)[0]),
      );
    },
  },
  {
    id: "network.allowlist-no-path-around",
    title:
      'network "allowlist" with every connection refused: nothing reaches the host\'s loopback, its addresses or IPv6, and no raw sockets',
    async run(context, skip) {
      await withRefusingAllowlist(context, skip, async ({ connection }, intercepted) => {
        await withProbeServers(["127.0.0.1", "::1", "0.0.0.0", "::"], async (servers) => {
          const targets: [string, number][] = servers.flatMap((server) =>
            ["127.0.0.1", "::1", "10.0.2.2", ...hostAddresses("IPv4"), ...hostAddresses("IPv6")].map(
              (address): [string, number] => [address, server.port],
            ),
          );
          // The relay inside accepts every TCP connection before the host decides on it, so
          // "connected" says nothing here: what counts is that no probe server saw one and no
          // greeting of theirs came back.
          const results = await connectFrom(context, connection, targets);
          expect(Object.entries(results).filter(([, result]) => result.includes("polydev-probe"))).toEqual(
            [],
          );
          expect(servers.map((server) => server.connections())).toEqual(servers.map(() => 0));
        });
        const raw = await context.python<Record<string, string>>(connection, RAW_SOCKETS);
        expect(Object.entries(raw).filter(([, result]) => result === "created")).toEqual([]);
        // What left the sandbox went to the handler, never straight to the host.
        expect(intercepted.filter((destination) => destination.address.includes(":"))).toEqual([]);
      });
    },
  },
  {
    id: "network.allowlist-terminal",
    title:
      'network "allowlist": a terminal\'s processes are intercepted like any other, nothing reaches the host',
    async run(context, skip) {
      await withRefusingAllowlist(context, skip, async ({ connection }, intercepted) => {
        await withProbeServers(["127.0.0.1", "0.0.0.0"], async (servers) => {
          const targets = servers.flatMap((server) =>
            ["127.0.0.1", "10.0.2.2", "198.51.100.9", ...hostAddresses("IPv4")].map(
              (address) => `${address}:${server.port}`,
            ),
          );
          // A shell on a terminal of its own, as the dashboard's web terminal opens it.
          const pty = await connection.openPty({ argv: ["/bin/sh"], cols: 120, rows: 40 });
          let screen = "";
          pty.output.on("data", (chunk: Buffer) => {
            screen += chunk.toString("utf8");
          });
          const script = targets
            .map((target) => {
              const [host, port] = target.split(":");
              return `python3 -c 'import socket; socket.create_connection(("${host}", ${port}), timeout=2).recv(64)' 2>/dev/null`;
            })
            .join("; ");
          pty.write(`${script}; echo terminal-probe-$((6*7))\n`);
          await waitFor("the terminal's probes", async () =>
            screen.includes("terminal-probe-42") ? true : undefined,
          );
          pty.kill("SIGKILL");
          expect(screen).not.toContain("polydev-probe");
          expect(servers.map((server) => server.connections())).toEqual(servers.map(() => 0));
          // Its connection out went to the policy, like any process's.
          expect(intercepted.some((destination) => destination.address === "198.51.100.9")).toBe(true);
        });
      });
    },
  },
  {
    id: "network.allowlist-no-net-admin",
    title: 'network "allowlist": the ruleset, routes and network sysctls cannot be changed from inside',
    async run(context, skip) {
      await withRefusingAllowlist(context, skip, async ({ connection }, intercepted) => {
        const attempts = await context.sh(
          connection,
          [
            "/usr/sbin/nft flush ruleset",
            "/usr/sbin/nft delete table inet polydev",
            "/usr/sbin/ip route del local default table local",
            "/usr/sbin/ip route add default dev lo",
            "/usr/sbin/ip link add polydev0 type dummy",
            "echo 1 > /proc/sys/net/ipv4/ip_forward",
            "echo 0 > /proc/sys/net/ipv4/conf/all/rp_filter",
          ]
            .map((command) => `(${command}) 2>/dev/null && echo "allowed: ${command}"`)
            .join("; ")
            .concat("; echo end"),
        );
        expect(attempts.stdout).toBe("end\n");
        // Still intercepted afterwards: a connection out arrives at the handler.
        await connectFrom(context, connection, [["198.51.100.7", 443]]);
        await waitFor("the intercepted connection", async () =>
          intercepted.some((destination) => destination.address === "198.51.100.7") ? true : undefined,
        );
      });
    },
  },
];
