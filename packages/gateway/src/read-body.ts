/**
 * Reads a request body whole, within the request's budget and in bounded time: a client that
 * announces more than it may send is refused before a byte is read, every byte is counted as it
 * arrives, and a client that stalls (or trickles) is abandoned, so no buffer outlives its use.
 */
import type { IncomingMessage } from "node:http";
import { PolydevError } from "@polydev/core";
import type { RequestTicket } from "./request-budget.js";

/** The client hung up before its body was complete: there is no one left to answer. */
export class ClientGone extends Error {
  constructor() {
    super("the client went away before sending the whole body");
  }
}

export interface BodyTimeouts {
  idleMs: number;
  totalMs: number;
}

export function readBody(
  req: IncomingMessage,
  ticket: RequestTicket,
  timeouts: BodyTimeouts,
): Promise<Buffer> {
  const announced = req.headers["content-length"];
  let reserved = 0;
  if (announced !== undefined) {
    // Node has checked it is a number; reserving it now answers an oversized body at once.
    reserved = Number(announced);
    ticket.reserve(reserved);
  }
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let received = 0;
    let idle: NodeJS.Timeout | undefined;
    const total = setTimeout(
      () =>
        fail(new PolydevError("request_timeout", `the request body took longer than ${timeouts.totalMs} ms`)),
      timeouts.totalMs,
    );
    const armIdle = (): void => {
      clearTimeout(idle);
      idle = setTimeout(
        () => fail(new PolydevError("request_timeout", `the request body stalled for ${timeouts.idleMs} ms`)),
        timeouts.idleMs,
      );
    };
    const cleanup = (): void => {
      clearTimeout(idle);
      clearTimeout(total);
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      req.off("close", onClose);
    };
    const fail = (error: unknown): void => {
      cleanup();
      chunks.length = 0;
      // Whatever else the client sends is read and dropped, so it can see the answer; the answer
      // closes the connection.
      req.resume();
      reject(error);
    };
    const onData = (chunk: Buffer): void => {
      received += chunk.length;
      if (received > reserved) {
        try {
          ticket.reserve(received - reserved);
        } catch (error) {
          fail(error);
          return;
        }
        reserved = received;
      }
      chunks.push(chunk);
      armIdle();
    };
    const onEnd = (): void => {
      cleanup();
      resolve(Buffer.concat(chunks, received));
    };
    const onError = (error: Error): void => fail(error);
    const onClose = (): void => {
      if (!req.complete) fail(new ClientGone());
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
    req.on("close", onClose);
    armIdle();
  });
}
