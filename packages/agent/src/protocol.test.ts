import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Duplex } from "node:stream";
import type { AgentConnection } from "@polydev/core";
import { AGENT_PROTOCOL_VERSION, PolydevError } from "@polydev/core";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { ControlMessage } from "./channel.js";
import { connectAgent } from "./connect.js";
import { duplexPair } from "./duplex-pair.js";
import type { Frame } from "./frame.js";
import { encodeJsonFrame, FrameReader, FrameType, HEADER_BYTES } from "./frame.js";
import { CAPABILITIES } from "./hello.js";
import { identityLauncher } from "./identity-launcher.js";
import { Mux } from "./mux.js";
import { createAgentServer } from "./server.js";

let home: string;
let stateDir: string;
const cleanups: (() => Promise<void> | void)[] = [];

beforeEach(async () => {
  home = await mkdtemp(join(tmpdir(), "polydev-agent-home-"));
  stateDir = await mkdtemp(join(tmpdir(), "polydev-agent-state-"));
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await rm(home, { recursive: true, force: true });
  await rm(stateDir, { recursive: true, force: true });
});

function serve(agentVersion?: string): Duplex {
  const [callerEnd, agentEnd] = duplexPair();
  const served = createAgentServer(
    identityLauncher({ home, stateDir }),
    agentVersion === undefined ? {} : { agentVersion },
  ).serve(agentEnd);
  cleanups.push(() => served.close());
  return callerEnd;
}

async function connect(stream: Duplex): Promise<AgentConnection> {
  const agent = await connectAgent(stream);
  cleanups.push(() => agent.close());
  return agent;
}

/** Collects every frame that arrives on a raw stream end. */
function frames(stream: Duplex): Frame[] {
  const seen: Frame[] = [];
  const reader = new FrameReader();
  stream.on("data", (chunk: Buffer) => seen.push(...reader.push(chunk)));
  return seen;
}

const json = (frame: Frame | undefined): unknown => JSON.parse(frame?.payload.toString("utf8") ?? "null");

describe("hello", () => {
  it("announces the protocol version, the agent version, the capabilities and the sandbox's user", async () => {
    const agent = await connect(serve("9.9.9-test"));
    expect(agent.hello).toEqual({
      protocolVersion: AGENT_PROTOCOL_VERSION,
      agentVersion: "9.9.9-test",
      capabilities: [...CAPABILITIES],
      home,
      user: expect.any(String),
    });
    expect(agent.hello.capabilities).toEqual(expect.arrayContaining(["exec", "pty", "files", "background"]));
  });

  it("refuses an agent that speaks another protocol version", async () => {
    const [callerEnd, fakeAgentEnd] = duplexPair();
    fakeAgentEnd.write(
      encodeJsonFrame(0, FrameType.hello, {
        type: "hello",
        protocolVersion: 99,
        agentVersion: "x",
        capabilities: [],
      }),
    );
    const refusal = connectAgent(callerEnd);
    await expect(refusal).rejects.toBeInstanceOf(PolydevError);
    await expect(refusal).rejects.toMatchObject({
      code: "driver_unavailable",
      message: expect.stringContaining("99"),
    });
  });

  it("makes the agent refuse a caller that speaks another protocol version", async () => {
    const callerEnd = serve();
    const seen = frames(callerEnd);
    callerEnd.write(encodeJsonFrame(0, FrameType.hello, { type: "hello", protocolVersion: 99 }));
    await new Promise((resolve) => callerEnd.once("end", resolve));
    const refusal = seen.find((frame) => frame.channel === 0 && frame.type === FrameType.control);
    expect(json(refusal)).toMatchObject({ type: "error", code: "driver_unavailable" });
  });

  it("gives up on a silent agent after helloTimeoutMs", async () => {
    const [callerEnd] = duplexPair();
    await expect(connectAgent(callerEnd, { helloTimeoutMs: 50 })).rejects.toMatchObject({ code: "timeout" });
  });

  it("stops waiting for the hello when the signal aborts", async () => {
    const [callerEnd] = duplexPair();
    const controller = new AbortController();
    const connecting = connectAgent(callerEnd, { signal: controller.signal });
    controller.abort();
    await expect(connecting).rejects.toMatchObject({ code: "timeout" });
  });
});

describe("ping and errors", () => {
  it("pings", async () => {
    const agent = await connect(serve());
    const roundTripMs = await agent.ping();
    expect(roundTripMs).toBeGreaterThan(0);
    expect(roundTripMs).toBeLessThan(5000);
  });

  it("carries code, message and details across the wire", async () => {
    const agent = await connect(serve());
    const error = await agent.files.stat("../elsewhere").catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(PolydevError);
    expect(error).toMatchObject({
      code: "path_outside_home",
      status: 400,
      message: expect.stringContaining("must stay under the home"),
      details: { path: "../elsewhere" },
    });
  });

  it("answers an unknown operation with invalid_request", async () => {
    const callerEnd = serve();
    const answers: ControlMessage[] = [];
    const mux = new Mux(callerEnd, {}, "client");
    cleanups.push(() => mux.close());
    const channel = mux.open({ type: "files.teleport" });
    channel.on("control", (message) => answers.push(message));
    await new Promise((resolve) => channel.once("close", resolve));
    expect(answers).toEqual([expect.objectContaining({ type: "error", code: "invalid_request" })]);
  });

  it("drops a connection that sends a corrupt frame, and fails calls in flight", async () => {
    const [callerEnd, agentEnd] = duplexPair();
    const agentSide = createAgentServer(identityLauncher({ home, stateDir })).serve(agentEnd);
    cleanups.push(() => agentSide.close());
    const agent = await connect(callerEnd);
    const sleeping = await agent.exec({ argv: ["sleep", "30"] });
    const header = Buffer.alloc(HEADER_BYTES);
    header.writeUInt32BE(0xffffffff, 0);
    agentEnd.write(header);
    await expect(sleeping.exited).rejects.toMatchObject({ code: "sandbox_not_running" });
    await expect(agent.ping()).rejects.toMatchObject({ code: "sandbox_not_running" });
  });

  it("fails calls with sandbox_not_running once the connection is closed", async () => {
    const agent = await connect(serve());
    await agent.close();
    await expect(agent.ping()).rejects.toMatchObject({ code: "sandbox_not_running" });
  });

  it("rejects a call whose signal has already aborted", async () => {
    const agent = await connect(serve());
    await expect(agent.ping(AbortSignal.abort())).rejects.toMatchObject({ code: "timeout" });
  });
});
