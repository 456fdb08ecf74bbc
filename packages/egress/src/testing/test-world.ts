/**
 * A private "outside world" for egress tests: a network namespace the test creates, joined to
 * this one by a veth pair, with servers (netns-servers.ts) on a public-looking address
 * (198.51.100.x, a documentation range) and on a private one (10.213.x.2). Real routing, no
 * loopback: the guard has no test-only switch to reach its own host.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export interface TestWorld {
  publicAddress: string;
  privateAddress: string;
  close(): void;
}

function ip(...args: string[]): void {
  execFileSync("ip", args, { stdio: ["ignore", "ignore", "pipe"] });
}

export async function startTestWorld(): Promise<TestWorld> {
  const slot = process.pid % 60;
  const namespace = `polydev-egress-${process.pid}`;
  const hostSide = `peg${process.pid}`.slice(0, 15);
  const worldSide = "eth0";
  const publicAddress = `198.51.100.${slot * 4 + 2}`;
  const hostAddress = `198.51.100.${slot * 4 + 1}`;
  const privateAddress = `10.213.${slot}.2`;
  const directory = mkdtempSync(join(tmpdir(), "polydev-egress-"));
  let child: ChildProcess | undefined;
  const close = (): void => {
    if (child?.pid !== undefined) child.kill("SIGKILL");
    try {
      ip("netns", "del", namespace);
    } catch {
      // Already gone.
    }
    rmSync(directory, { recursive: true, force: true });
  };
  try {
    ip("netns", "add", namespace);
    ip("link", "add", hostSide, "type", "veth", "peer", "name", worldSide, "netns", namespace);
    ip("addr", "add", `${hostAddress}/30`, "dev", hostSide);
    ip("link", "set", hostSide, "up");
    ip("route", "add", `${privateAddress}/32`, "dev", hostSide);
    ip("-n", namespace, "link", "set", "lo", "up");
    ip("-n", namespace, "addr", "add", `${publicAddress}/30`, "dev", worldSide);
    ip("-n", namespace, "addr", "add", `${privateAddress}/32`, "dev", worldSide);
    ip("-n", namespace, "link", "set", worldSide, "up");
    ip("-n", namespace, "route", "add", "default", "dev", worldSide);
    const cert = join(directory, "cert.pem");
    const key = join(directory, "key.pem");
    execFileSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=test.example",
        "-keyout",
        key,
        "-out",
        cert,
      ],
      { stdio: "ignore" },
    );
    const script = fileURLToPath(new URL("./netns-servers.ts", import.meta.url));
    const started = spawn(
      "ip",
      ["netns", "exec", namespace, process.execPath, "--import", "tsx", script, cert, key],
      {
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    child = started;
    await new Promise<void>((resolve, reject) => {
      let output = "";
      started.stdout?.on("data", (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes("ready")) resolve();
      });
      started.once("exit", (code) => reject(new Error(`the test servers exited (${code})`)));
      started.once("error", reject);
    });
    return { publicAddress, privateAddress, close };
  } catch (error) {
    close();
    throw error;
  }
}
