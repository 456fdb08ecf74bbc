/**
 * The image store. Names hold "/" and ":", so they travel URL-encoded in paths
 * (`/v1/images/alice%2Fnode%3A1`).
 *
 * - `POST /v1/images` JSON `{"name", "dockerfile", "buildArgs"?}`: a Dockerfile build (FROM an image in
 *   the store, no COPY); JSON `{"name", "pull": "host/ns/app:tag"}`: a registry pull; a tar body
 *   (`Content-Type: application/x-tar`, `?name=`) holding `Dockerfile` and the build context. Each
 *   answers 202 with the image in `building`; `GET …/log?follow=true` streams its output.
 * - `POST /v1/images/import?name=`: an OCI image layout or `docker save` tar as the body (any content
 *   type, streamed); answers 201 with the ready image.
 */
import { PassThrough, Readable } from "node:stream";
import { PolydevError } from "@polydev/core";
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { requirePrincipal } from "../http/auth.js";
import type { ServerContext } from "../http/context.js";
import { zodApp } from "../http/context.js";
import {
  createImageBodySchema,
  imageDetailSchema,
  imageNameQuerySchema,
  imageParamsSchema,
  imageSchema,
  logQuerySchema,
  presentImage,
  tagBodySchema,
} from "../http/image-schemas.js";
import type { ImageService } from "../services/image-service.js";

const tags = ["images"];
/** Log output waiting for a slow follower, at most. */
const MAX_UNSENT_LOG_BYTES = 1024 * 1024;

function requireImages(ctx: ServerContext): ImageService {
  if (!ctx.images) {
    throw new PolydevError("feature_unavailable", "this server has no image store configured");
  }
  return ctx.images;
}

function bodyProblem(error: z.ZodError): PolydevError {
  const issue = error.issues[0];
  const where = issue && issue.path.length > 0 ? `${issue.path.join(".")}: ` : "";
  return new PolydevError(
    "invalid_request",
    `${where}${issue?.message ?? "invalid body"}; send {"name", "dockerfile"} to build or {"name", "pull"} to pull`,
    { details: { issues: error.issues.map((i) => ({ path: i.path, message: i.message })) } },
  );
}

export function imageRoutes(instance: FastifyInstance, ctx: ServerContext): void {
  const app = zodApp(instance);

  // A tar body (a build context) is handed to the build as the stream it is, never buffered.
  instance.register(async (scoped) => {
    scoped.addContentTypeParser("application/x-tar", (_request, payload, done) => done(null, payload));
    zodApp(scoped).post(
      "/v1/images",
      {
        schema: {
          tags,
          summary:
            "Build an image from a Dockerfile, or pull one from a registry (answers at once, in building)",
          description:
            'JSON {"name", "dockerfile", "buildArgs"?} builds (FROM an image in the store; COPY needs a context); JSON {"name", "pull"} pulls from a registry; a tar body (Content-Type: application/x-tar) with ?name= builds from the Dockerfile and files it holds. Follow GET /v1/images/{name}/log?follow=true; the image becomes ready or failed.',
          querystring: z.strictObject({ name: z.string().max(255).optional() }),
          response: { 202: imageSchema },
        },
      },
      async (request, reply) => {
        const images = requireImages(ctx);
        const { userId } = requirePrincipal(request);
        const body: unknown = request.body;
        let record: Awaited<ReturnType<ImageService["build"]>>;
        if (body instanceof Readable) {
          const name = request.query.name;
          if (name === undefined) {
            throw new PolydevError("invalid_request", "a context upload needs ?name=<image name>");
          }
          record = await images.build(userId, { name, context: body });
        } else {
          const parsed = createImageBodySchema.safeParse(body);
          if (!parsed.success) throw bodyProblem(parsed.error);
          record =
            "pull" in parsed.data
              ? await images.pull(userId, parsed.data.name, parsed.data.pull)
              : await images.build(userId, {
                  name: parsed.data.name,
                  dockerfile: parsed.data.dockerfile,
                  buildArgs: parsed.data.buildArgs,
                });
        }
        return reply.status(202).send(presentImage(record));
      },
    );
  });

  // Archives come in any content type (curl --data-binary sends its own) and are streamed.
  instance.register(async (scoped) => {
    scoped.removeAllContentTypeParsers();
    scoped.addContentTypeParser("*", (_request, payload, done) => done(null, payload));
    zodApp(scoped).post(
      "/v1/images/import",
      {
        schema: {
          tags,
          summary: "Import an OCI image layout or docker-archive tar (the body, streamed; not gzipped)",
          querystring: imageNameQuerySchema,
          response: { 201: imageSchema },
        },
      },
      async (request, reply) => {
        const images = requireImages(ctx);
        const { userId } = requirePrincipal(request);
        const body: unknown = request.body;
        if (!(body instanceof Readable)) {
          throw new PolydevError("invalid_request", "send the image archive as the request body");
        }
        const record = await images.importArchive(userId, request.query.name, body);
        return reply.status(201).send(presentImage(record));
      },
    );
  });

  app.get(
    "/v1/images",
    {
      schema: {
        tags,
        summary: "Your images and the system images, by name",
        response: { 200: z.object({ images: z.array(imageSchema) }) },
      },
    },
    async (request) => {
      const list = await requireImages(ctx).list(requirePrincipal(request).userId);
      return { images: list.map(presentImage) };
    },
  );

  app.get(
    "/v1/images/:name",
    {
      schema: {
        tags,
        summary: "An image: its state, layers, config and build log",
        params: imageParamsSchema,
        response: { 200: imageDetailSchema },
      },
    },
    async (request) => {
      const images = requireImages(ctx);
      const { image, live } = await images.buildLog(requirePrincipal(request).userId, request.params.name);
      return { ...presentImage(image), log: live?.content ?? image.buildLog };
    },
  );

  app.get(
    "/v1/images/:name/log",
    {
      schema: {
        tags,
        summary: "The build or pull log as text; with follow=true, streamed until the build ends",
        params: imageParamsSchema,
        querystring: logQuerySchema,
      },
    },
    async (request, reply) => {
      const images = requireImages(ctx);
      const { image, live } = await images.buildLog(requirePrincipal(request).userId, request.params.name);
      reply.type("text/plain; charset=utf-8");
      if (!live || !request.query.follow) return reply.send(live?.content ?? image.buildLog);
      const out = new PassThrough();
      // What is there so far and every later chunk, taken in the same tick: nothing is missed.
      out.write(live.content);
      const stop = live.follow((chunk) => {
        if (chunk === null) out.end();
        else if (out.writableLength > MAX_UNSENT_LOG_BYTES) {
          // A client that does not read must not hold the server's memory: it is let go.
          stop();
          out.end("\n[the log stream ended: the client read too slowly; GET the log again]\n");
        } else out.write(chunk);
      });
      request.raw.once("close", stop);
      out.once("close", stop);
      return reply.send(out);
    },
  );

  app.post(
    "/v1/images/:name/tag",
    {
      schema: {
        tags,
        summary: "Give a ready image another name (the same digest and layers)",
        params: imageParamsSchema,
        body: tagBodySchema,
        response: { 201: imageSchema },
      },
    },
    async (request, reply) => {
      const images = requireImages(ctx);
      const record = await images.tag(
        requirePrincipal(request).userId,
        request.params.name,
        request.body.name,
      );
      return reply.status(201).send(presentImage(record));
    },
  );

  app.delete(
    "/v1/images/:name",
    {
      schema: {
        tags,
        summary: "Delete your image; 409 image_in_use while a sandbox made from it exists",
        params: imageParamsSchema,
        response: { 204: z.null().describe("deleted") },
      },
    },
    async (request, reply) => {
      await requireImages(ctx).delete(requirePrincipal(request).userId, request.params.name);
      return reply.status(204).send(null);
    },
  );
}
