/**
 * The dashboard: files of the web build (`config.webDir`), and index.html for every other page
 * GET that is not the API, so client-side routes survive a reload. The directory is looked at per
 * request, so building the dashboard needs no server restart.
 */
import { stat } from "node:fs/promises";
import { resolve, sep } from "node:path";
import fastifyStatic from "@fastify/static";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { ServerContext } from "../http/context.js";

/**
 * The dashboard loads only its own files; xterm.js injects <style> elements, hence inline styles.
 * connect-src 'self' covers the same-origin WebSocket of the terminal.
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

export const WEB_SECURITY_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  "content-security-policy": CONTENT_SECURITY_POLICY,
  "x-frame-options": "DENY",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
});

/** Vite puts content-hashed files under assets/: a changed file gets a new name. */
const IMMUTABLE_MAX_AGE_MS = 365 * 24 * 60 * 60 * 1000;

const NOT_BUILT_PAGE = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Polydev: dashboard not built</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 4rem auto; line-height: 1.5">
<h1>The dashboard is not built</h1>
<p>The API is running, but there is no dashboard to show yet. Build it, then reload this page:</p>
<pre>npm run build -w @polydev/web</pre>
<p>The server looks for it in the directory set by <code>POLYDEV_WEB_DIR</code> (default: <code>packages/web/dist</code>).</p>
</body>
</html>
`;

function isApiPath(path: string): boolean {
  return path === "/v1" || path.startsWith("/v1/") || path === "/healthz";
}

function acceptsHtml(request: FastifyRequest): boolean {
  return (request.headers.accept ?? "").split(",").some((type) => /^\s*text\/html\b/i.test(type));
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

export async function webRoutes(app: FastifyInstance, ctx: ServerContext): Promise<void> {
  const root = ctx.config.webDir;
  // Only reply.sendFile is used (serve: false): one route below decides what each path gets.
  await app.register(fastifyStatic, { root, serve: false, suppressWarning: true, dotfiles: "deny" });

  /** A file inside the web dir for this URL path, or undefined (missing, a directory, or outside). */
  async function fileFor(path: string): Promise<string | undefined> {
    let relative: string;
    try {
      relative = decodeURIComponent(path).replace(/^\/+/, "");
    } catch {
      return undefined;
    }
    if (relative === "" || relative.includes("\0")) return undefined;
    const absolute = resolve(root, relative);
    if (!absolute.startsWith(root + sep)) return undefined;
    return (await isFile(absolute)) ? absolute.slice(root.length + 1) : undefined;
  }

  const sendIndex = async (reply: FastifyReply) => {
    reply.headers(WEB_SECURITY_HEADERS);
    if (!(await isFile(resolve(root, "index.html")))) {
      return reply
        .status(503)
        .type("text/html; charset=utf-8")
        .header("cache-control", "no-store")
        .send(NOT_BUILT_PAGE);
    }
    // Always revalidated: it names the current hashed assets.
    return reply.sendFile("index.html", { maxAge: 0, cacheControl: true, lastModified: true, etag: true });
  };

  app.get("/*", { schema: { hide: true } }, async (request, reply) => {
    const path = request.url.split("?")[0] ?? "/";
    if (isApiPath(path)) return reply.callNotFound();
    const file = await fileFor(path);
    if (file === "index.html") return sendIndex(reply);
    if (file !== undefined) {
      reply.headers(WEB_SECURITY_HEADERS);
      const hashed = file.startsWith(`assets${sep}`);
      return reply.sendFile(file, hashed ? { maxAge: IMMUTABLE_MAX_AGE_MS, immutable: true } : { maxAge: 0 });
    }
    // The root is the dashboard for every client (curl included); deeper unknown paths get the
    // page only when a browser asks for one, so a mistyped asset stays a plain 404.
    if (path === "/" || acceptsHtml(request)) return sendIndex(reply);
    return reply.callNotFound();
  });
}
