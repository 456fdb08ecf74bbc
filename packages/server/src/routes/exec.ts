import type { Readable } from "node:stream";
import { StringDecoder } from "node:string_decoder";
import type { ExecProcess } from "@polydev/core";
import type { FastifyInstance } from "fastify";
import { requirePrincipal } from "../http/auth.js";
import { clientGoneSignal } from "../http/client-gone.js";
import type { ServerContext } from "../http/context.js";
import { zodApp } from "../http/context.js";
import { toArgv } from "../http/present.js";
import { execBody, execResultSchema, sandboxIdParams } from "../http/schemas.js";
import { serveSse } from "../http/serve-sse.js";
import { wantsEventStream } from "../http/sse.js";

export function execRoutes(instance: FastifyInstance, ctx: ServerContext): void {
  const app = zodApp(instance);
  app.post(
    "/v1/sandboxes/:id/exec",
    {
      bodyLimit: ctx.config.jsonBodyLimitBytes,
      schema: {
        tags: ["exec"],
        summary:
          "Run a command; with Accept: text/event-stream the output streams as stdout/stderr/exit events",
        params: sandboxIdParams,
        body: execBody,
        response: { 200: execResultSchema },
      },
    },
    async (request, reply) => {
      const principal = requirePrincipal(request);
      const { sandbox, agent } = await ctx.sandboxes.agent(principal.userId, request.params.id);
      const body = request.body;
      const process = await agent.exec({
        argv: toArgv(body.cmd),
        ...(body.cwd === undefined ? {} : { cwd: body.cwd }),
        ...(body.env === undefined ? {} : { env: body.env }),
        ...(body.user === undefined ? {} : { user: body.user }),
        timeoutMs: body.timeoutMs ?? ctx.config.execDefaultTimeoutMs,
      });
      feedStdin(process, body.stdin);
      ctx.metrics.execStarted(wantsEventStream(request) ? "stream" : "buffered");

      if (wantsEventStream(request)) {
        return serveSse(request, reply, async (sse) => {
          sse.signal.addEventListener("abort", () => process.kill("SIGKILL"), { once: true });
          await Promise.all([
            pump(process.stdout, "stdout", sse.send),
            pump(process.stderr, "stderr", sse.send),
          ]);
          const exit = await process.exited;
          await sse.send("exit", exit);
          ctx.sandboxes.touch(sandbox.id);
        });
      }

      // Nobody is left to read the answer of a client that hung up: stop its command too.
      const gone = clientGoneSignal(reply);
      const stop = (): void => process.kill("SIGKILL");
      if (gone.aborted) stop();
      else gone.addEventListener("abort", stop, { once: true });
      const limit = ctx.config.execBufferLimitBytes;
      const [stdout, stderr] = await Promise.all([
        collect(process.stdout, limit),
        collect(process.stderr, limit),
      ]);
      const exit = await process.exited;
      ctx.sandboxes.touch(sandbox.id);
      return {
        ...exit,
        stdout: stdout.text,
        stderr: stderr.text,
        truncated: stdout.truncated || stderr.truncated,
      };
    },
  );
}

/** stdin is written then closed; a process that exits without reading it is not an error. */
function feedStdin(process: ExecProcess, stdin: string | undefined): void {
  process.stdin.on("error", () => undefined);
  if (stdin === undefined || stdin.length === 0) {
    process.stdin.end();
    return;
  }
  process.stdin.end(stdin);
}

async function pump(
  stream: Readable,
  event: "stdout" | "stderr",
  send: (event: string, data: unknown) => Promise<void>,
): Promise<void> {
  const decoder = new StringDecoder("utf8");
  for await (const chunk of stream) {
    const text = decoder.write(chunk as Buffer);
    if (text.length > 0) await send(event, { data: text });
  }
  const rest = decoder.end();
  if (rest.length > 0) await send(event, { data: rest });
}

/** Keeps the first `limit` bytes and drains the rest so the process never blocks on a full pipe. */
async function collect(stream: Readable, limit: number): Promise<{ text: string; truncated: boolean }> {
  const chunks: Buffer[] = [];
  let size = 0;
  let truncated = false;
  for await (const chunk of stream) {
    const buffer = chunk as Buffer;
    if (size >= limit) {
      truncated = true;
      continue;
    }
    const room = limit - size;
    const kept = buffer.length > room ? buffer.subarray(0, room) : buffer;
    if (kept.length < buffer.length) truncated = true;
    chunks.push(kept);
    size += kept.length;
  }
  return { text: Buffer.concat(chunks).toString("utf8"), truncated };
}
