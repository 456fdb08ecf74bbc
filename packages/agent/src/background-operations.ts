/** bg.*: background processes that outlive the channel, the connection and the agent itself. */
import { pipeline } from "node:stream/promises";
import { PolydevError } from "@polydev/core";
import { StreamId } from "./channel.js";
import { launchRequest } from "./launch.js";
import type { Operation } from "./operation.js";
import { reply } from "./operation.js";
import {
  argvField,
  envField,
  optionalBoolean,
  optionalNumber,
  optionalString,
  signalField,
  stringField,
} from "./request-fields.js";

export const startBackgroundOperation: Operation = async ({ launcher }, channel, request) => {
  const started = await launcher.background.start(
    launchRequest(launcher, {
      argv: argvField(request),
      cwd: optionalString(request, "cwd"),
      env: envField(request),
      user: optionalString(request, "user"),
    }),
  );
  reply(channel, started);
};

export const listBackgroundOperation: Operation = async ({ launcher }, channel) => {
  reply(channel, await launcher.background.list());
};

export const getBackgroundOperation: Operation = async ({ launcher }, channel, request) => {
  reply(channel, await launcher.background.get(stringField(request, "id")));
};

export const signalBackgroundOperation: Operation = async ({ launcher }, channel, request) => {
  await launcher.background.signal(stringField(request, "id"), signalField(request));
  reply(channel, {});
};

export const attachBackgroundOperation: Operation = async ({ launcher }, channel, request) => {
  const fromOffset = optionalNumber(request, "fromOffset") ?? 0;
  if (!Number.isSafeInteger(fromOffset) || fromOffset < 0) {
    throw new PolydevError("invalid_request", "fromOffset must be a byte offset (0 or more)");
  }
  const stopped = new AbortController();
  channel.once("close", () => stopped.abort());
  const output = await launcher.background.attach(stringField(request, "id"), {
    fromOffset,
    follow: optionalBoolean(request, "follow") ?? true,
    signal: stopped.signal,
  });
  channel.control({ type: "started" });
  // pipeline, not pipe: when the caller goes away the reader is destroyed (and stops).
  await pipeline(output, channel.writable(StreamId.stdout)).catch(() => undefined);
  channel.close();
};
