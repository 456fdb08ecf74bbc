/**
 * The TCP ports listening in a sandbox, read from inside it: /proc/net/tcp{,6} (LISTEN state)
 * and, to name the process, which of the sandbox's processes holds each socket's inode. One exec
 * of a fixed script; its output is capped, and so is the number of ports answered.
 */
import type { AgentConnection } from "@polydev/core";
import { PolydevError } from "@polydev/core";

export const MAX_LISTED_PORTS = 256;
const MAX_OUTPUT_BYTES = 2 * 1024 * 1024;
const LIST_TIMEOUT_MS = 15_000;

/**
 * `ls -l` of every fd directory prints each socket as `… -> socket:[inode]` under a
 * `/proc/<pid>/fd:` heading, and `head -v` each process's name under `==> /proc/<pid>/comm <==`:
 * two processes, however many there are to look at.
 */
const SCRIPT = [
  "cat /proc/net/tcp /proc/net/tcp6 2>/dev/null",
  "echo '#fds'",
  "ls -l /proc/[0-9]*/fd 2>/dev/null | grep -e '^/proc/' -e 'socket:'",
  "echo '#comm'",
  "head -v -n1 /proc/[0-9]*/comm 2>/dev/null",
  "true",
].join("; ");

export interface ListeningPort {
  port: number;
  /** Where it listens: 127.0.0.1, 0.0.0.0, ::1, :: … (the first seen when several). */
  address: string;
  process: { pid: number; name: string } | null;
}

export async function listListeningPorts(
  agent: AgentConnection,
  signal?: AbortSignal,
): Promise<ListeningPort[]> {
  const process = await agent.exec({ argv: ["sh", "-c", SCRIPT], timeoutMs: LIST_TIMEOUT_MS }, signal);
  process.stdin.end();
  process.stderr.resume();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdout) {
    const buffer = chunk as Buffer;
    if (size >= MAX_OUTPUT_BYTES) continue;
    chunks.push(buffer.subarray(0, MAX_OUTPUT_BYTES - size));
    size += buffer.length;
  }
  const exit = await process.exited;
  if (exit.timedOut) {
    throw new PolydevError("timeout", "listing the sandbox's ports took too long; try again");
  }
  return parseListing(Buffer.concat(chunks).toString("utf8"));
}

/** Parses the script's output (exported for tests). */
export function parseListing(text: string): ListeningPort[] {
  const [tcp = "", rest = ""] = text.split("\n#fds\n");
  const [fds = "", comms = ""] = rest.split("\n#comm\n");
  const listening = new Map<number, { address: string; inodes: Set<string> }>();
  for (const line of tcp.split("\n")) {
    const fields = line.trim().split(/\s+/);
    // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
    const [local, state, inode] = [fields[1], fields[3], fields[9]];
    if (local === undefined || state !== "0A" || inode === undefined) continue;
    const [hexAddress = "", hexPort = ""] = local.split(":");
    const port = Number.parseInt(hexPort, 16);
    if (!Number.isInteger(port) || port < 1 || port > 65535) continue;
    const entry = listening.get(port) ?? { address: decodeAddress(hexAddress), inodes: new Set<string>() };
    entry.inodes.add(inode);
    listening.set(port, entry);
    if (listening.size >= MAX_LISTED_PORTS) break;
  }
  const owners = new Map<string, number>();
  let pid = 0;
  for (const line of fds.split("\n")) {
    const heading = /^\/proc\/(\d+)\/fd:$/.exec(line);
    if (heading) {
      pid = Number(heading[1]);
      continue;
    }
    const socket = /socket:\[(\d+)\]/.exec(line);
    if (socket?.[1] !== undefined && pid > 0 && !owners.has(socket[1])) owners.set(socket[1], pid);
  }
  const names = new Map<number, string>();
  const commLines = comms.split("\n");
  for (let i = 0; i < commLines.length; i++) {
    const heading = /^==> \/proc\/(\d+)\/comm <==$/.exec(commLines[i] ?? "");
    if (heading) names.set(Number(heading[1]), (commLines[i + 1] ?? "").trim().slice(0, 64));
  }
  return [...listening.entries()]
    .sort(([a], [b]) => a - b)
    .map(([port, { address, inodes }]) => {
      const owner = [...inodes].map((inode) => owners.get(inode)).find((found) => found !== undefined);
      return {
        port,
        address,
        process: owner === undefined ? null : { pid: owner, name: names.get(owner) ?? "" },
      };
    });
}

/** /proc/net/tcp's addresses: IPv4 as one little-endian word, IPv6 as four. */
function decodeAddress(hex: string): string {
  if (hex.length === 8) {
    const bytes = Buffer.from(hex, "hex").reverse();
    return [...bytes].join(".");
  }
  if (hex.length === 32) {
    const words: string[] = [];
    for (let i = 0; i < 32; i += 8) {
      const word = Buffer.from(hex.slice(i, i + 8), "hex")
        .reverse()
        .toString("hex");
      words.push(word.slice(0, 4), word.slice(4));
    }
    const full = words.map((w) => w.replace(/^0{1,3}/, "")).join(":");
    if (full === "0:0:0:0:0:0:0:0") return "::";
    if (full === "0:0:0:0:0:0:0:1") return "::1";
    return full.replace(/^0:0:0:0:0:ffff:/, "::ffff:");
  }
  return hex;
}
