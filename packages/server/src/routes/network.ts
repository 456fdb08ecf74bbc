/**
 * Networks: a sandbox's allow-list (read, change live), its egress audit (paged and live),
 * presets (everyone reads, admins write) and users' default networks (admins).
 */
import type { EgressAuditRecord, EgressPresetRecord } from "@polydev/core";
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { requireAdmin, requirePrincipal } from "../http/auth.js";
import type { ServerContext } from "../http/context.js";
import { zodApp } from "../http/context.js";
import {
  auditEventSchema,
  auditQuerySchema,
  networkChoiceSchema,
  networkInputSchema,
  networkPatchSchema,
  networkViewSchema,
  presetBodySchema,
  presetNameSchema,
  presetSchema,
} from "../http/network-schemas.js";
import { idParams, sandboxIdParams } from "../http/schemas.js";
import { serveSse } from "../http/serve-sse.js";
import type { NetworkPolicies } from "../services/network-policies.js";

const tags = ["network"];

export function presentAuditEvent(e: EgressAuditRecord) {
  const { sandboxId: _sandboxId, ...rest } = e;
  return { ...rest, at: new Date(e.at).toISOString() };
}

function presentPreset(p: EgressPresetRecord) {
  return { name: p.name, description: p.description, allow: p.allow, deny: p.deny };
}

async function networkView(
  policies: NetworkPolicies,
  sandbox: {
    network: "none" | "egress" | "allowlist";
    egressPolicy: { allow: string[]; deny: string[]; presets: string[] } | null;
  },
) {
  const policy = sandbox.egressPolicy ?? { allow: [], deny: [], presets: [] };
  return { mode: sandbox.network, ...policy, effective: await policies.effective(policy) };
}

export function networkRoutes(instance: FastifyInstance, ctx: ServerContext): void {
  const app = zodApp(instance);

  app.get(
    "/v1/sandboxes/:id/network",
    {
      schema: {
        tags,
        summary: "A sandbox's network: its mode and, for an allow-list, its rules and the effective ones",
        params: sandboxIdParams,
        response: { 200: networkViewSchema },
      },
    },
    async (request) => {
      const sandbox = await ctx.sandboxes.get(requirePrincipal(request).userId, request.params.id);
      return networkView(ctx.networkPolicies, sandbox);
    },
  );

  app.patch(
    "/v1/sandboxes/:id/network",
    {
      schema: {
        tags,
        summary: "Change an allow-list sandbox's rules; the next connection follows them, no restart",
        params: sandboxIdParams,
        body: networkPatchSchema,
        response: { 200: networkViewSchema },
      },
    },
    async (request) => {
      const principal = requirePrincipal(request);
      const sandbox = await ctx.sandboxes.get(principal.userId, request.params.id);
      const updated = await ctx.networkPolicies.update(sandbox, request.body);
      await ctx.egress.policyChanged(updated);
      return networkView(ctx.networkPolicies, updated);
    },
  );

  app.get(
    "/v1/sandboxes/:id/network/audit",
    {
      schema: {
        tags,
        summary: "The sandbox's egress decisions, newest first (the last 2000 are kept)",
        params: sandboxIdParams,
        querystring: auditQuerySchema,
        response: { 200: z.object({ events: z.array(auditEventSchema) }) },
      },
    },
    async (request) => {
      const sandbox = await ctx.sandboxes.get(requirePrincipal(request).userId, request.params.id);
      const events = await ctx.store.egressAudit.list(sandbox.id, {
        limit: request.query.limit,
        beforeId: request.query.before,
      });
      return { events: events.map(presentAuditEvent) };
    },
  );

  app.get(
    "/v1/sandboxes/:id/network/audit/stream",
    {
      schema: {
        tags,
        summary: "The sandbox's egress decisions as they happen (Server-Sent Events, event `egress`)",
        params: sandboxIdParams,
      },
    },
    async (request, reply) => {
      const sandbox = await ctx.sandboxes.get(requirePrincipal(request).userId, request.params.id);
      return serveSse(request, reply, async (sse) => {
        // Events are sent one at a time in order; a slow client holds its own queue, bounded.
        const queue: EgressAuditRecord[] = [];
        let wake: (() => void) | undefined;
        ctx.egress.subscribe(
          sandbox.id,
          (event) => {
            if (queue.length < 1000) queue.push(event);
            wake?.();
          },
          sse.signal,
        );
        await sse.send("ready", { sandboxId: sandbox.id });
        while (!sse.signal.aborted) {
          const next = queue.shift();
          if (next) {
            await sse.send("egress", presentAuditEvent(next), next.id);
            continue;
          }
          await new Promise<void>((resolve) => {
            wake = resolve;
            sse.signal.addEventListener("abort", () => resolve(), { once: true });
          });
          wake = undefined;
        }
      });
    },
  );

  app.get(
    "/v1/network-presets",
    {
      schema: {
        tags,
        summary: "Named allow-lists an admin defines, usable in an allow-list network's presets",
        response: { 200: z.object({ presets: z.array(presetSchema) }) },
      },
    },
    async (request) => {
      requirePrincipal(request);
      return { presets: (await ctx.networkPolicies.listPresets()).map(presentPreset) };
    },
  );

  app.put(
    "/v1/admin/network-presets/:name",
    {
      schema: {
        tags: ["admin"],
        summary: "Create or replace a network preset; sandboxes naming it follow at their next connection",
        params: z.object({ name: presetNameSchema }),
        body: presetBodySchema,
        response: { 200: presetSchema },
      },
    },
    async (request) => {
      requireAdmin(request);
      const preset = await ctx.networkPolicies.putPreset(request.params.name, request.body);
      await ctx.egress.presetChanged(preset.name);
      return presentPreset(preset);
    },
  );

  app.delete(
    "/v1/admin/network-presets/:name",
    {
      schema: {
        tags: ["admin"],
        summary: "Delete a network preset (409 while a live sandbox or a user's default names it)",
        params: z.object({ name: presetNameSchema }),
      },
    },
    async (request, reply) => {
      requireAdmin(request);
      await ctx.networkPolicies.deletePreset(request.params.name);
      return reply.status(204).send();
    },
  );

  app.get(
    "/v1/admin/users/:id/network-default",
    {
      schema: {
        tags: ["admin"],
        summary: "The network a user's sandboxes get when a create names none (null: none)",
        params: idParams,
        response: { 200: z.object({ network: networkChoiceSchema.nullable() }) },
      },
    },
    async (request) => {
      requireAdmin(request);
      return { network: await ctx.networkPolicies.userDefault(request.params.id) };
    },
  );

  app.put(
    "/v1/admin/users/:id/network-default",
    {
      schema: {
        tags: ["admin"],
        summary: "Set the network a user's sandboxes get when a create names none",
        params: idParams,
        body: z.strictObject({ network: networkInputSchema.nullable() }),
        response: { 200: z.object({ network: networkChoiceSchema.nullable() }) },
      },
    },
    async (request) => {
      requireAdmin(request);
      return { network: await ctx.networkPolicies.setUserDefault(request.params.id, request.body.network) };
    },
  );
}
