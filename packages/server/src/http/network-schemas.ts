/** Request and response shapes of networks: modes, allow-list rules, presets, audit events. */
import { NETWORK_MODES } from "@polydev/core";
import { egressRuleProblem } from "@polydev/egress";
import { z } from "zod";

const MAX_RULES = 256;
const MAX_PRESETS = 32;

const ruleEntry = z
  .string()
  .min(1, "a rule must not be empty")
  .max(253, "a rule is at most 253 characters")
  .superRefine((entry, ctx) => {
    const problem = egressRuleProblem(entry);
    if (problem) ctx.addIssue({ code: "custom", message: problem });
  });

const ruleList = (what: string) =>
  z
    .array(ruleEntry)
    .max(MAX_RULES, `at most ${MAX_RULES} ${what} rules`)
    .describe(
      `${what} rules: domain names (registry.example.com), wildcards (*.example.com), * (any name), IP addresses or CIDRs (10.20.0.0/16)`,
    );

export const presetNameSchema = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, "preset names are 1–63 lowercase letters, digits or '-'");

const presetList = z.array(presetNameSchema).max(MAX_PRESETS, `at most ${MAX_PRESETS} presets`);

/** Rules as a request gives them (deny and presets optional). */
export const egressPolicyInputSchema = z.strictObject({
  allow: ruleList("allow"),
  deny: ruleList("deny").optional(),
  presets: presetList.optional().describe("names of admin-defined presets whose rules are added"),
});

/** A network as a create (or a user default) names it. */
export const networkInputSchema = z
  .union([
    z.enum(NETWORK_MODES),
    z.discriminatedUnion("mode", [
      z.strictObject({ mode: z.literal("none") }),
      z.strictObject({ mode: z.literal("egress") }),
      egressPolicyInputSchema.extend({ mode: z.literal("allowlist") }),
    ]),
  ])
  .describe(
    '"none" (default): loopback only; "egress": outbound internet; {"mode": "allowlist", "allow": [...], "deny": [...], "presets": [...]}: only what the rules allow, decided outside the sandbox',
  );

export const egressPolicySchema = z.object({
  allow: z.array(z.string()),
  deny: z.array(z.string()),
  presets: z.array(z.string()),
});

export const networkChoiceSchema = z.union([
  z.object({ mode: z.enum(["none", "egress"]) }),
  egressPolicySchema.extend({ mode: z.literal("allowlist") }),
]);

export const networkViewSchema = egressPolicySchema
  .extend({
    mode: z.enum(NETWORK_MODES),
    effective: z.object({ allow: z.array(z.string()), deny: z.array(z.string()) }),
  })
  .meta({ id: "SandboxNetwork" });

export const networkPatchSchema = z
  .strictObject({
    allow: ruleList("allow").optional(),
    deny: ruleList("deny").optional(),
    presets: presetList.optional(),
  })
  .refine((p) => p.allow !== undefined || p.deny !== undefined || p.presets !== undefined, {
    message: "name at least one of allow, deny or presets",
  });

export const presetSchema = z
  .object({
    name: z.string(),
    description: z.string(),
    allow: z.array(z.string()),
    deny: z.array(z.string()),
  })
  .meta({ id: "NetworkPreset" });

export const presetBodySchema = z.strictObject({
  description: z.string().max(512).optional(),
  allow: ruleList("allow"),
  deny: ruleList("deny").optional(),
});

export const auditEventSchema = z
  .object({
    id: z.number(),
    at: z.string(),
    kind: z.enum(["tcp", "dns"]),
    host: z.string().nullable(),
    address: z.string(),
    port: z.number(),
    decision: z.enum(["allowed", "denied"]),
    reason: z.string(),
    bytesOut: z.number(),
    bytesIn: z.number(),
    durationMs: z.number(),
  })
  .meta({ id: "EgressAuditEvent" });

export const auditQuerySchema = z.strictObject({
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  before: z.coerce.number().int().min(1).optional().describe("the id of the oldest event you have"),
});
