/** Request and response shapes of the image store. */
import type { ImageRecord } from "@polydev/core";
import { z } from "zod";

const iso = (ms: number): string => new Date(ms).toISOString();

const imageName = z
  .string()
  .min(1)
  .max(255)
  .describe('lowercase path components and an optional tag, e.g. "alice/node:1"; "polydev/…" is reserved');

const buildArgs = z
  .record(
    z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "build arg names are letters, digits and _"),
    z.string().max(32 * 1024),
  )
  .refine((args) => Object.keys(args).length <= 64, "at most 64 build args");

export const buildBodySchema = z.strictObject({
  name: imageName,
  dockerfile: z
    .string()
    .max(1024 * 1024)
    .describe("the Dockerfile's text; FROM names an image in the store"),
  buildArgs: buildArgs.optional(),
});

export const pullBodySchema = z.strictObject({
  name: imageName,
  pull: z
    .string()
    .min(1)
    .max(1024)
    .describe('a registry reference, e.g. "registry.example.com:5000/team/app:1"'),
});

/** POST /v1/images with a JSON body: a Dockerfile build or a pull. */
export const createImageBodySchema = z.union([buildBodySchema, pullBodySchema]);

export const imageNameQuerySchema = z.strictObject({ name: imageName });

export const imageParamsSchema = z.strictObject({
  name: z.string().min(1).max(600).describe("the image name, URL-encoded (alice%2Fnode%3A1)"),
});

export const tagBodySchema = z.strictObject({ name: imageName.describe("the new name") });

export const snapshotBody = z.strictObject({ name: imageName.describe("the new image's name") });

export const logQuerySchema = z.strictObject({
  follow: z
    .enum(["true", "false", "1", "0"])
    .optional()
    .transform((value) => value === "true" || value === "1")
    .describe("keep the answer open and stream the build's output until it ends"),
});

const imageConfigSchema = z.object({
  env: z.record(z.string(), z.string()),
  workdir: z.string().optional(),
  user: z.string().optional(),
  cmd: z.array(z.string()).optional(),
  entrypoint: z.array(z.string()).optional(),
});

export const imageSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    system: z.boolean().describe("a system image (polydev/base), visible to every user"),
    digest: z.string().nullable().describe("sha256 of the layer list and config; null until ready"),
    state: z.enum(["building", "ready", "failed"]),
    source: z.enum(["base", "import", "pull", "dockerfile", "snapshot"]),
    layers: z.array(z.string()),
    config: imageConfigSchema,
    sizeBytes: z.number(),
    error: z.string().nullable(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .meta({ id: "Image" });

export const imageDetailSchema = imageSchema
  .extend({ log: z.string().describe("the build or pull log (its newest 256 KiB)") })
  .meta({ id: "ImageDetail" });

export function presentImage(image: ImageRecord) {
  return {
    id: image.id,
    name: image.name,
    system: image.ownerId === null,
    digest: image.digest,
    state: image.state,
    source: image.source,
    layers: image.layers,
    config: image.config,
    sizeBytes: image.sizeBytes,
    error: image.error,
    createdAt: iso(image.createdAt),
    updatedAt: iso(image.updatedAt),
  };
}
