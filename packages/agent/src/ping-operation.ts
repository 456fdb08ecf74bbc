import type { Operation } from "./operation.js";
import { reply } from "./operation.js";

export const pingOperation: Operation = (_context, channel) => reply(channel, { at: Date.now() });
