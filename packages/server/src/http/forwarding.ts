/**
 * Any replica serves any client: a request about a sandbox (its routes, exec, files, processes,
 * terminal, projects, snapshots, forks, an admin's destroy) or about a run (status, events, cancel) is answered by
 * the node that hosts the sandbox, because that node holds its agent connection, terminals, live
 * run output and cancels. A login is answered by the node running its CLI (its row names it). One hook, before the route runs, looks up the owning node from the id
 * in the path and relays the request there (forwarding-proxy.ts), signed with the cluster secret
 * (internal-channel.ts). Three routes name their sandbox in the body instead: a create is placed
 * on a node (nodes.ts), and a run or a login goes where its sandbox is.
 *
 * Registered only when replicas share a database and Redis: a single server pays nothing.
 * A forwarded request is never forwarded again, so rows that disagree cannot make a loop.
 */
import type { Duplex } from "node:stream";
import type { Clock, LoginRecord, SandboxRecord, Store } from "@polydev/core";
import { PolydevError } from "@polydev/core";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { Logger } from "pino";
import { type LoginState, UNFINISHED_LOGIN_STATES } from "../services/login-service.js";
import type { NodeRegistry } from "../services/nodes.js";
import type { Principal } from "./auth.js";
import { type ForwardTarget, proxyHttp, proxyUpgrade } from "./forwarding-proxy.js";
import { signInternalRequest } from "./internal-channel.js";

export interface ForwardingDeps {
  registry: NodeRegistry;
  store: Store;
  clock: Clock;
  log: Logger;
  clusterSecret: string | undefined;
  /** What a create gets when its body names no driver or memory. */
  defaults: { driver: string; memoryMb: number };
}

/** Routes a dead node's sandbox can still answer from the database alone (its row, logs, runs). */
const READABLE_WITHOUT_NODE = new Set([
  "/v1/sandboxes/:id",
  "/v1/sandboxes/:id/logs",
  "/v1/runs/:id",
  "/v1/runs/:id/events",
  "/v1/runs/:id/changes",
  "/v1/logins/:id",
  "/v1/logins/:id/events",
]);
const ENDED = new Set(["failed", "destroyed"]);

export function registerForwarding(app: FastifyInstance, deps: ForwardingDeps): void {
  const { registry, store, log } = deps;
  const upgraded = new Set<Duplex>();
  app.addHook("onClose", async () => {
    for (const socket of upgraded) socket.destroy();
  });

  /** The sandbox a path names (by id or by the principal's name for it). */
  async function sandboxOf(principal: Principal, idOrName: string): Promise<SandboxRecord | undefined> {
    return idOrName.includes("_")
      ? store.sandboxes.get(idOrName)
      : store.sandboxes.getForUserByName(principal.userId, idOrName);
  }

  /** Where a sandbox's request goes: undefined answers here. Throws when its owner cannot be reached. */
  function targetFor(request: FastifyRequest, sandbox: SandboxRecord | undefined) {
    if (!sandbox) return Promise.resolve(undefined);
    return targetOnNode(request, {
      what: `sandbox ${sandbox.id}`,
      owner: sandbox.node,
      ended: ENDED.has(sandbox.state),
    });
  }

  function targetForLogin(request: FastifyRequest, login: LoginRecord | undefined) {
    if (!login) return Promise.resolve(undefined);
    return targetOnNode(request, {
      what: `login ${login.id}`,
      owner: login.node,
      ended: !UNFINISHED_LOGIN_STATES.includes(login.state as LoginState),
    });
  }

  async function targetOnNode(
    request: FastifyRequest,
    item: { what: string; owner: string | null; ended: boolean },
  ): Promise<{ name: string; url: string } | undefined> {
    const { owner } = item;
    if (owner === null || owner === registry.name) return undefined;
    const node = await registry.live(owner);
    if (!node) {
      const readable = request.method === "GET" && READABLE_WITHOUT_NODE.has(request.routeOptions.url ?? "");
      if (item.ended || readable) return undefined;
      throw new PolydevError(
        "node_unavailable",
        `${item.what} is on node ${owner}, which is not answering; it is marked failed once its registration expires`,
        { details: { node: owner } },
      );
    }
    if (deps.clusterSecret === undefined) {
      throw new PolydevError(
        "cluster_secret_missing",
        `${item.what} is on node ${owner}: set the same POLYDEV_CLUSTER_SECRET on every replica so requests can be forwarded`,
      );
    }
    return node;
  }

  function signedTarget(request: FastifyRequest, principal: Principal, node: { name: string; url: string }) {
    // The node's origin and the request's path, joined as text: a path such as `//elsewhere/…`
    // stays a path on the owning node and never names another host.
    const url = new URL(`${node.url}${request.url.startsWith("/") ? "" : "/"}${request.url}`);
    const signature = signInternalRequest(deps.clusterSecret ?? "", {
      principal,
      method: request.method,
      url: request.url,
      from: registry.name,
      at: deps.clock.now(),
    });
    return { node: node.name, url, signature } satisfies ForwardTarget;
  }

  // Path-named sandboxes and runs: before the body is read, so uploads stream through.
  app.addHook("onRequest", async (request: FastifyRequest, reply: FastifyReply) => {
    const principal = request.principal;
    const route = request.routeOptions.url;
    if (!principal || request.forwardedBy !== undefined || !route) return;
    const params = request.params as Record<string, string | undefined>;
    const id = params.id;
    if (id === undefined) return;
    let node: { name: string; url: string } | undefined;
    // An admin's destroy of any user's sandbox too: only its node can end its processes.
    if (
      route.startsWith("/v1/sandboxes/:id") ||
      (route === "/v1/admin/sandboxes/:id" && request.method === "DELETE")
    )
      node = await targetFor(request, await sandboxOf(principal, id));
    else if (route.startsWith("/v1/runs/:id")) {
      const run = await store.runs.get(id);
      node = await targetFor(request, run ? await store.sandboxes.get(run.sandboxId) : undefined);
    } else if (route.startsWith("/v1/logins/:id")) {
      // Another user's login is forwarded like one that does not exist: its node answers 404.
      node = await targetForLogin(request, await store.logins.get(id));
    } else return;
    if (!node) return;
    const target = signedTarget(request, principal, node);
    if (request.ws) {
      const socket = proxyUpgrade(request, reply, target, log);
      upgraded.add(socket);
      socket.once("close", () => upgraded.delete(socket));
    } else proxyHttp(request, reply, target, "stream", log);
  });

  // Placement reads each node's load: this node's record follows its own creates at once.
  app.addHook("onResponse", async (request, reply) => {
    if (request.method === "POST" && request.routeOptions.url === "/v1/sandboxes" && reply.statusCode === 201)
      registry.refresh().catch((error: unknown) => log.warn({ err: error }, "could not refresh this node"));
  });

  // Body-named: the body is parsed (and small), so it is sent on re-encoded.
  app.addHook("preValidation", async (request: FastifyRequest, reply: FastifyReply) => {
    const principal = request.principal;
    if (!principal || request.forwardedBy !== undefined || request.method !== "POST") return;
    const route = request.routeOptions.url;
    if (route !== "/v1/sandboxes" && route !== "/v1/runs" && route !== "/v1/logins") return;
    const body: unknown = request.body ?? {};
    if (typeof body !== "object" || body === null || Array.isArray(body)) return;
    const fields = body as Record<string, unknown>;
    let node: { name: string; url: string } | undefined;
    if (route === "/v1/sandboxes") {
      const driver = typeof fields.driver === "string" ? fields.driver : deps.defaults.driver;
      const memoryMb = typeof fields.memoryMb === "number" ? fields.memoryMb : deps.defaults.memoryMb;
      node = await registry.place({ driver, memoryMb });
      if (node && deps.clusterSecret === undefined) node = undefined;
    } else {
      if (typeof fields.sandboxId !== "string") return;
      node = await targetFor(request, await sandboxOf(principal, fields.sandboxId));
    }
    if (!node) return;
    const target = signedTarget(request, principal, node);
    const headers = request.headers;
    headers["content-type"] = "application/json";
    proxyHttp(request, reply, target, Buffer.from(JSON.stringify(body)), log);
  });
}
