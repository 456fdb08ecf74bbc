/**
 * Provider sign-ins: the provider's own CLI runs its login inside a sandbox, the user opens the
 * URL in their own browser and sends back the code (or the localhost URL the browser ended on).
 */
import type { components } from "./api-types.js";
import type { CallOptions } from "./client.js";
import { readSse } from "./sse.js";
import type { ApiTransport } from "./transport.js";
import { unwrap } from "./transport.js";

export type Login = components["schemas"]["Login"];
export type LoginProvider = Login["provider"];

const FINAL_LOGIN_STATES: readonly Login["state"][] = ["completed", "failed", "timed_out", "cancelled"];

/** Builds `polydev.logins`. */
export function loginsApi(transport: ApiTransport) {
  return {
    /**
     * Starts a provider's CLI login; answers once the sign-in URL is known.
     * @example const login = await polydev.logins.start("claude"); console.log("open", login.url);
     */
    start: async (
      provider: LoginProvider,
      body: { sandboxId?: string } = {},
      call: CallOptions = {},
    ): Promise<Login> =>
      unwrap(await transport.api().POST("/v1/logins", { body: { provider, ...body }, signal: call.signal })),
    /** @example const { state } = await polydev.logins.get(login.id); */
    get: async (id: string, call: CallOptions = {}): Promise<Login> =>
      unwrap(await transport.api().GET("/v1/logins/{id}", { params: { path: { id } }, signal: call.signal })),
    /**
     * Finishes a login with the code the provider showed, or the URL the browser ended on.
     * @example await polydev.logins.submit(login.id, { code: "abc123" });
     */
    submit: async (
      id: string,
      answer: { code: string } | { callbackUrl: string },
      call: CallOptions = {},
    ): Promise<Login> =>
      unwrap(
        await transport.api().POST("/v1/logins/{id}/code", {
          params: { path: { id } },
          body: answer,
          signal: call.signal,
        }),
      ),
    /** @example await polydev.logins.cancel(login.id); */
    cancel: async (id: string, call: CallOptions = {}): Promise<Login> =>
      unwrap(
        await transport.api().DELETE("/v1/logins/{id}", { params: { path: { id } }, signal: call.signal }),
      ),
    /**
     * The login's state each time it changes, ending with its final state.
     * @example for await (const login of polydev.logins.states(id)) console.log(login.state);
     */
    states: (id: string, call: CallOptions = {}): AsyncGenerator<Login> => followStates(transport, id, call),
  };
}

async function* followStates(transport: ApiTransport, id: string, call: CallOptions): AsyncGenerator<Login> {
  const response = await transport.raw(`/v1/logins/${encodeURIComponent(id)}/events`, {
    headers: { accept: "text/event-stream" },
    ...(call.signal ? { signal: call.signal } : {}),
  });
  if (!response.body) return;
  for await (const message of readSse(response.body)) {
    if (message.event !== "state") continue;
    const login = JSON.parse(message.data) as Login;
    yield login;
    if (FINAL_LOGIN_STATES.includes(login.state)) return;
  }
}
