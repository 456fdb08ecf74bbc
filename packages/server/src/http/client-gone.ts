/**
 * A signal that fires when the client goes away before its answer was sent in full, so work done
 * only for that answer (a buffered command, a stream) stops with it instead of running on.
 */
import type { FastifyReply } from "fastify";

export function clientGoneSignal(reply: FastifyReply): AbortSignal {
  const controller = new AbortController();
  const response = reply.raw;
  // The response's own close fires when the connection drops or the answer is done; a listener
  // on the socket would pile up on keep-alive connections.
  const onClose = (): void => {
    if (!response.writableFinished) controller.abort();
  };
  if (response.destroyed || response.socket?.destroyed === true) onClose();
  else response.once("close", onClose);
  return controller.signal;
}
