/**
 * Requests generated from our own OpenAPI document: for every operation, a valid-ish baseline
 * drawn from its schemas, then mutations of it (wrong types, missing and extra fields, huge and
 * negative numbers, NaN-like strings, bad JSON, odd content types, `../` and `%00` and unicode in
 * ids and paths, 1 MB strings, empty bodies, arrays for objects).
 *
 * Written here rather than taken from schemathesis: it runs inside vitest against our own server
 * process (whose memory the test measures), needs no Python at test time, and a small seeded PRNG
 * makes every run send the same requests, so a failure names a request that can be sent again.
 */

export interface JsonSchema {
  $ref?: string;
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean | JsonSchema;
  propertyNames?: JsonSchema;
  items?: JsonSchema;
  minItems?: number;
  maxItems?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  format?: string;
  enum?: unknown[];
  const?: unknown;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  allOf?: JsonSchema[];
}

export interface OpenApiParameter {
  name: string;
  in: "path" | "query" | "header" | "cookie";
  required?: boolean;
  schema?: JsonSchema;
}

export interface OpenApiOperation {
  summary?: string;
  parameters?: OpenApiParameter[];
  requestBody?: { required?: boolean; content?: Record<string, { schema?: JsonSchema }> };
  responses?: Record<string, unknown>;
}

export interface OpenApiDocument {
  paths: Record<string, Record<string, OpenApiOperation>>;
  components?: { schemas?: Record<string, JsonSchema> };
}

export interface FuzzCase {
  /** "METHOD /path/{template}" as in the document. */
  operation: string;
  mutation: string;
  method: string;
  /** Raw path and query, sent as is (not normalised by a URL parser). */
  path: string;
  headers: Record<string, string>;
  body?: string | Buffer;
  /** Open it as a WebSocket instead of a plain request. */
  websocket?: boolean;
}

/** Real things the fuzzer aims at, so requests get past "does not exist" into the deep paths. */
export interface FuzzTargets {
  userKey: string;
  adminKey: string;
  sandboxId: string;
  /** A second sandbox of the user that may be hibernated, destroyed, anything. */
  spareSandboxId: string;
  userId: string;
  processId: string;
  runId: string;
  loginId: string;
}

/** mulberry32: tiny, fast, and the same sequence for the same seed on every machine. */
export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Inclusive of both ends. */
  int(min: number, max: number): number {
    return Math.floor(this.next() * (max - min + 1)) + min;
  }
  chance(probability: number): boolean {
    return this.next() < probability;
  }
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error("pick from an empty list");
    return items[Math.floor(this.next() * items.length)] as T;
  }
  word(length: number, alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"): string {
    let out = "";
    for (let i = 0; i < length; i++) out += alphabet[Math.floor(this.next() * alphabet.length)];
    return out;
  }
}

const MIB = 1024 * 1024;

/** Values of every JSON type, each odd for most fields. */
const ODD_VALUES: readonly unknown[] = [
  null,
  true,
  0,
  -1,
  1.5,
  -1e308,
  1e308,
  2 ** 53 + 2,
  "",
  "NaN",
  "Infinity",
  "-0",
  "0x10",
  " 12 ",
  "../../../etc/passwd",
  "/etc/shadow",
  "a\u0000b",
  "%00",
  "ü😀\u202e\ud800",
  [],
  [1, "2", null],
  {},
  { nested: { deeper: [{}] } },
];

/** Stand-ins for ids and path parts: encoded as they go on the wire. */
const ODD_PATH_PARTS: readonly string[] = [
  "..",
  "%2e%2e",
  "..%2f..%2fetc%2fpasswd",
  "%2F",
  "%00",
  "a%00b",
  "%",
  "%zz",
  "%C3%BC%F0%9F%98%80",
  "%ED%A0%80",
  "x".repeat(65),
  "x".repeat(5000),
  "-1",
  "0",
  "1e400",
  "NaN",
  "null",
  "undefined",
  "__proto__",
  "constructor",
  "sbx_doesnotexist",
  "%20",
  "a;b=c",
  "a,b",
  "'%22",
  "%3Cscript%3E",
  "",
];

const ODD_QUERY_VALUES: readonly string[] = [
  "abc",
  "",
  "-1",
  "1e400",
  "NaN",
  "Infinity",
  "9".repeat(400),
  "0x10",
  "1.5",
  "%00",
  "a%00b",
  "true",
  "null",
  "..%2F..%2Fetc%2Fpasswd",
  "%C3%BC%F0%9F%98%80",
  "%",
  "%zz",
  "[object%20Object]",
];

const BAD_JSON_BODIES: readonly string[] = [
  "{",
  '{"a":',
  "{'a':1}",
  "[1,]",
  '{"a":1}}',
  "NaN",
  "undefined",
  "\u0000",
  '{"a":1e400}',
  '{"__proto__":{"polluted":true}}',
  '{"constructor":{"prototype":{"polluted":true}}}',
  `${"[".repeat(20_000)}${"]".repeat(20_000)}`,
  `{"a":${'"x",'.repeat(10)}}`,
  "\ufeff{}",
  "null",
  "true",
  "42",
  '"a string"',
];

const CONTENT_TYPES: readonly (string | undefined)[] = [
  undefined,
  "text/plain",
  "application/x-www-form-urlencoded",
  "multipart/form-data; boundary=fz",
  "application/json; charset=utf-16",
  "application/json, text/plain",
  "application/octet-stream",
  "application/xml",
  "a/b/c",
  "",
];

/** Named candidates for the patterns our schemas use; the first that matches is taken. */
function patternCandidates(rng: Rng): string[] {
  const id = `fz_${rng.word(rng.int(4, 12))}`;
  return [
    id,
    `FZ_${rng.word(6).toUpperCase()}`,
    `fz-${rng.word(8).toLowerCase()}`,
    `${rng.int(1, 2 ** 40)}:${id}`,
    `fz${rng.word(10)}`,
    "fzfzfzfz",
  ];
}

export class OpenApiFuzzer {
  /** The operation being generated, for `choices`. */
  private operation = "";

  /**
   * `choices` are values known to mean something to the server under test, keyed "METHOD /path
   * name": a body property always takes one (where some valid values are slow by design, say),
   * a query parameter half of the time (a path that exists, next to random ones that do not).
   */
  constructor(
    private readonly doc: OpenApiDocument,
    private readonly targets: FuzzTargets,
    private readonly rng: Rng,
    private readonly choices: Record<string, readonly unknown[]> = {},
  ) {}

  private resolve(schema: JsonSchema | undefined, depth = 0): JsonSchema {
    let current = schema ?? {};
    while (current.$ref && depth < 10) {
      const name = current.$ref.split("/").at(-1) ?? "";
      current = this.doc.components?.schemas?.[name] ?? {};
      depth += 1;
    }
    return current;
  }

  /** A value the schema accepts (mostly: refinements the document cannot express are ignored). */
  sample(schema: JsonSchema | undefined, depth = 0): unknown {
    const s = this.resolve(schema);
    const rng = this.rng;
    if (s.const !== undefined) return s.const;
    if (s.enum && s.enum.length > 0) return rng.pick(s.enum);
    const union = s.anyOf ?? s.oneOf ?? s.allOf;
    if (union && union.length > 0) return this.sample(rng.pick(union), depth + 1);
    const type = Array.isArray(s.type) ? rng.pick(s.type) : s.type;
    switch (type) {
      case "string":
        return this.sampleString(s);
      case "integer":
      case "number":
        return this.sampleNumber(s, type === "integer");
      case "boolean":
        return rng.chance(0.5);
      case "null":
        return null;
      case "array": {
        const min = s.minItems ?? 0;
        const max = Math.min(s.maxItems ?? min + 3, min + 3);
        return Array.from({ length: rng.int(min, max) }, () => this.sample(s.items, depth + 1));
      }
      default: {
        if (!s.properties && typeof s.additionalProperties !== "object") return `fz${rng.word(4)}`;
        const out: Record<string, unknown> = {};
        for (const [name, property] of Object.entries(s.properties ?? {})) {
          const required = s.required?.includes(name) ?? false;
          if (!required && (depth >= 4 || rng.chance(0.5))) continue;
          const chosen = this.choices[`${this.operation} ${name}`];
          if (chosen && chosen.length > 0) {
            out[name] = rng.pick(chosen);
            continue;
          }
          // A sandbox named in a body is the real one most of the time, so runs and logins start.
          out[name] =
            name === "sandboxId" && rng.chance(0.7)
              ? this.targets.sandboxId
              : this.sample(property, depth + 1);
        }
        if (typeof s.additionalProperties === "object" && depth < 4) {
          for (let i = rng.int(0, 2); i > 0; i--) {
            const key = this.sampleString(this.resolve(s.propertyNames ?? { type: "string", maxLength: 16 }));
            out[key] = this.sample(s.additionalProperties, depth + 1);
          }
        }
        return out;
      }
    }
  }

  private sampleString(s: JsonSchema): string {
    const rng = this.rng;
    if (s.format === "date-time") {
      return new Date(1_700_000_000_000 + rng.int(0, 2 ** 30) * 1000).toISOString();
    }
    if (s.format === "uri" || s.format === "url") {
      // Nothing listens there: a proxy or upstream set to it fails at once, not after a timeout.
      return rng.pick(["http://127.0.0.1:9/", "https://127.0.0.1:9/p"]);
    }
    if (s.pattern) {
      const pattern = new RegExp(s.pattern, "u");
      for (let attempt = 0; attempt < 4; attempt++) {
        const found = patternCandidates(rng).find(
          (c) => pattern.test(c) && c.length >= (s.minLength ?? 0) && c.length <= (s.maxLength ?? Infinity),
        );
        if (found) return found;
      }
    }
    const min = s.minLength ?? 0;
    const max = Math.max(s.maxLength ?? 64, min);
    // Now and then exactly the longest allowed: the edge where limits of the next layer bite.
    const length =
      rng.chance(0.08) && max <= 256 * 1024
        ? max
        : rng.int(Math.min(Math.max(min, 2), max), Math.min(max, Math.max(min, 24)));
    // A "fz" prefix: generated text is never a command that exists (no `yes`, no `sh`).
    return length < 2 ? "f".repeat(length) : `fz${rng.word(length - 2)}`;
  }

  private sampleNumber(s: JsonSchema, integer: boolean): number {
    const rng = this.rng;
    const low =
      s.minimum ?? (s.exclusiveMinimum === undefined ? -1000 : s.exclusiveMinimum + (integer ? 1 : 0.001));
    const high =
      s.maximum ?? (s.exclusiveMaximum === undefined ? 1000 : s.exclusiveMaximum - (integer ? 1 : 0.001));
    const choice = rng.int(0, 3);
    const value =
      choice === 0
        ? low
        : choice === 1
          ? high
          : low + rng.next() * (choice === 2 ? Math.min(high - low, 1000) : high - low);
    return integer ? Math.min(Math.max(Math.round(value), Math.ceil(low)), Math.floor(high)) : value;
  }

  /** Every case for one operation; `count` of them. */
  casesFor(method: string, template: string, operation: OpenApiOperation, count: number): FuzzCase[] {
    const cases: FuzzCase[] = [];
    for (let i = 0; i < count; i++) cases.push(this.oneCase(method, template, operation, i));
    return cases;
  }

  private oneCase(method: string, template: string, operation: OpenApiOperation, index: number): FuzzCase {
    const rng = this.rng;
    const name = `${method.toUpperCase()} ${template}`;
    this.operation = name;
    const isWebSocket = Object.hasOwn(operation.responses ?? {}, "101");
    const parameters = operation.parameters ?? [];
    const jsonSchema = operation.requestBody?.content?.["application/json"]?.schema;
    const takesRawBody =
      !jsonSchema && (method === "put" || method === "post") && template.endsWith("/content");

    // One in six requests is the baseline; the others carry one mutation each.
    const mutations = [
      "path",
      "query",
      "headers",
      ...(jsonSchema || takesRawBody ? ["body", "body", "body"] : ["stray-body"]),
    ];
    const kind = index % 6 === 0 ? "baseline" : rng.pick(mutations);
    let mutation = kind;

    // Path parameters: the real things most of the time.
    let path = template;
    for (const parameter of parameters.filter((p) => p.in === "path")) {
      let value = this.realValue(method, template, parameter);
      if (kind === "path" && rng.chance(0.7)) {
        value = rng.pick(ODD_PATH_PARTS);
        mutation = `path:${parameter.name}=${value.slice(0, 24)}`;
      }
      path = path.replace(`{${parameter.name}}`, value);
    }

    // Query: raw `name=value` segments, a valid value for each parameter the baseline sends.
    const query: string[] = [];
    for (const parameter of parameters.filter((p) => p.in === "query")) {
      if (parameter.required || rng.chance(0.6)) {
        const chosen = this.choices[`${name} ${parameter.name}`];
        const value = chosen && rng.chance(0.5) ? rng.pick(chosen) : this.sample(parameter.schema);
        query.push(`${parameter.name}=${encodeURIComponent(stringify(value))}`);
      }
    }
    if (kind === "query") mutation = this.mutateQuery(query, parameters);
    if (query.length > 0) path += `?${query.join("&")}`;
    // What no client puts on a request line (spaces, controls, raw non-ASCII) goes out encoded;
    // raw bytes are the business of the bare-socket cases below.
    path = path.replace(/[^\x21-\x7e]/gu, (c) => encodeURIComponent(c));

    const headers = this.headersFor(template);
    if (kind === "headers") mutation = this.mutateHeaders(headers);

    let body: string | Buffer | undefined;
    if (jsonSchema) {
      const value = this.sample(jsonSchema);
      body = JSON.stringify(value);
      headers["content-type"] = "application/json";
      if (kind === "body") {
        const mutated = this.mutateBody(value, jsonSchema);
        mutation = mutated.mutation;
        body = mutated.body;
        if (mutated.contentType === undefined) delete headers["content-type"];
        else headers["content-type"] = mutated.contentType;
      }
    } else if (takesRawBody) {
      // Big bodies with the other mutations too: a refusal that leaves half a body unread must
      // not stall the connection's next request.
      const size = kind === "body" ? rng.pick([0, 1, 4096, MIB, 3 * MIB]) : rng.pick([0, 100, 2048, MIB]);
      body = Buffer.alloc(size, rng.word(1));
      const contentType = kind === "body" ? rng.pick(CONTENT_TYPES) : "application/octet-stream";
      if (contentType !== undefined) headers["content-type"] = contentType;
      if (kind === "body") mutation = `raw-body:${size}:${contentType ?? "none"}`;
    } else if (kind === "stray-body") {
      body = rng.pick([JSON.stringify({ fz: 1 }), "not json", "x".repeat(MIB)]);
      headers["content-type"] = rng.pick(["application/json", "text/plain"]);
      mutation = `stray-body:${body.length}`;
    }

    return {
      operation: name,
      mutation,
      method: method.toUpperCase(),
      path,
      headers,
      ...(body === undefined ? {} : { body }),
      ...(isWebSocket && rng.chance(0.6) ? { websocket: true } : {}),
    };
  }

  /** Real ids (and, for a few operations, a spare one the fuzzer may break). */
  private realValue(method: string, template: string, parameter: OpenApiParameter): string {
    const t = this.targets;
    const rng = this.rng;
    if (parameter.name === "pid") return t.processId;
    if (parameter.name === "id") {
      if (template.startsWith("/v1/sandboxes/")) {
        // Destroying or freezing the sandbox every other request uses would end the deep paths.
        const destructive = method === "delete" && template === "/v1/sandboxes/{id}";
        const freezing = template.endsWith("/hibernate");
        return destructive || freezing || rng.chance(0.1) ? t.spareSandboxId : t.sandboxId;
      }
      if (template.startsWith("/v1/runs/")) return t.runId;
      if (template.startsWith("/v1/logins/")) return t.loginId;
      if (template.startsWith("/v1/admin/users/")) return t.userId;
      // An admin may destroy it: the spare, never the one the deep paths use.
      if (template.startsWith("/v1/admin/sandboxes/")) return t.spareSandboxId;
    }
    return encodeURIComponent(stringify(this.sample(parameter.schema)));
  }

  private headersFor(template: string): Record<string, string> {
    const admin = template.startsWith("/v1/admin/") ? this.rng.chance(0.8) : this.rng.chance(0.05);
    return { authorization: `Bearer ${admin ? this.targets.adminKey : this.targets.userKey}` };
  }

  private mutateQuery(query: string[], parameters: OpenApiParameter[]): string {
    const rng = this.rng;
    const names = parameters.filter((p) => p.in === "query").map((p) => p.name);
    const target = names.length > 0 ? rng.pick(names) : "fz";
    const drop = (): void => {
      const existing = query.findIndex((segment) => segment.startsWith(`${target}=`));
      if (existing >= 0) query.splice(existing, 1);
    };
    switch (rng.int(0, 6)) {
      case 0:
        drop();
        return `query-missing:${target}`;
      case 1: {
        const value = rng.pick(ODD_QUERY_VALUES);
        drop();
        query.push(`${target}=${value}`);
        return `query-odd:${target}=${value.slice(0, 24)}`;
      }
      case 2:
        query.push(`${target}=1`, `${target}=2`);
        return `query-duplicate:${target}`;
      case 3:
        query.push(`${target}[]=1`, `${target}[a]=2`);
        return `query-array:${target}`;
      case 4:
        query.push("fz_extra=1");
        return "query-extra";
      case 5:
        // Past Node's 16 KiB limit on the request line and headers: the client-error handler answers.
        query.push(`${target}=${"q".repeat(rng.pick([4000, 20_000]))}`);
        return "query-long";
      default:
        query.push("&&", "=", "%", target, `${target}==`);
        return "query-junk";
    }
  }

  private mutateHeaders(headers: Record<string, string>): string {
    const rng = this.rng;
    const choice = rng.int(0, 8);
    switch (choice) {
      case 0:
        delete headers.authorization;
        return "auth-none";
      case 1:
        headers.authorization = rng.pick([
          "Bearer",
          "Bearer ",
          "Basic Zm86YmFy",
          "bearer  x y",
          "Bearer pdk_wrong",
        ]);
        return `auth-odd:${headers.authorization}`;
      case 2:
        headers.authorization = `Bearer ${"k".repeat(10_000)}`;
        return "auth-long";
      case 3:
        delete headers.authorization;
        headers.cookie = rng.pick([
          "polydev_session=junk",
          "polydev_session=",
          `polydev_session=${"c".repeat(3000)}`,
        ]);
        return "cookie-junk";
      case 4:
        headers.accept = "text/event-stream";
        return "accept-sse";
      case 5:
        headers["x-request-id"] = rng.pick(["", "r".repeat(8000), "../x", "ü"]);
        return "request-id-odd";
      case 6:
        headers.origin = "https://evil.example";
        headers["x-csrf-token"] = "junk";
        return "cross-origin";
      case 7:
        headers["content-type"] = rng.pick(["application/json", "text/plain"]);
        headers["content-encoding"] = rng.pick(["gzip", "br", "junk"]);
        return `content-encoding:${headers["content-encoding"]}`;
      default:
        headers.authorization = `Bearer ${this.targets.adminKey}`;
        return "admin-key";
    }
  }

  private mutateBody(
    value: unknown,
    schema: JsonSchema,
  ): { mutation: string; body: string; contentType: string | undefined } {
    const rng = this.rng;
    const json = "application/json";
    const choice = rng.int(0, 11);
    const paths = leafPaths(value);
    const s = this.resolve(schema);
    switch (choice) {
      case 0: {
        const required = s.required ?? Object.keys(isRecord(value) ? value : {});
        const drop = required.length > 0 ? rng.pick(required) : "";
        const copy = isRecord(value) ? { ...value } : {};
        delete copy[drop];
        return { mutation: `missing:${drop}`, body: JSON.stringify(copy), contentType: json };
      }
      case 1: {
        const copy: Record<string, unknown> = isRecord(value) ? { ...value } : {};
        copy[rng.pick(["fz_extra", "__proto__", "constructor", ""])] = rng.pick(ODD_VALUES);
        return { mutation: "extra-field", body: JSON.stringify(copy), contentType: json };
      }
      case 2:
      case 3: {
        const path = paths.length > 0 ? rng.pick(paths) : [];
        const odd = rng.pick(ODD_VALUES);
        return {
          mutation: `wrong-type:${path.join(".")}=${JSON.stringify(odd)?.slice(0, 24)}`,
          body: JSON.stringify(setAt(value, path, odd)),
          contentType: json,
        };
      }
      case 4: {
        const path = paths.length > 0 ? rng.pick(paths) : [];
        const text = rng.pick(["1e400", "-1e400", "1e-400", "-0", "123456789012345678901234567890", "0.1e1"]);
        // Numbers JSON.stringify cannot write: spliced in as text.
        const marker = "__fz_number__";
        return {
          mutation: `number:${path.join(".")}=${text}`,
          body: JSON.stringify(setAt(value, path, marker)).replace(`"${marker}"`, text),
          contentType: json,
        };
      }
      case 5: {
        const path = paths.length > 0 ? rng.pick(paths) : [];
        return {
          mutation: `long-string:${path.join(".")}`,
          body: JSON.stringify(setAt(value, path, "L".repeat(MIB))),
          contentType: json,
        };
      }
      case 6: {
        const path = paths.length > 0 ? rng.pick(paths) : [];
        const odd = rng.pick([
          "../../etc/passwd",
          "/",
          ".",
          "a\u0000b",
          "%00",
          "ü😀\u202e",
          "\ud800",
          "-rf",
          "~root",
        ]);
        return {
          mutation: `odd-string:${path.join(".")}`,
          body: JSON.stringify(setAt(value, path, odd)),
          contentType: json,
        };
      }
      case 7:
        return { mutation: "array-for-object", body: JSON.stringify([value]), contentType: json };
      case 8: {
        const text = rng.pick(BAD_JSON_BODIES);
        return { mutation: `bad-json:${text.slice(0, 16)}`, body: text, contentType: json };
      }
      case 9:
        return { mutation: "empty-body", body: "", contentType: rng.pick([json, undefined]) };
      case 10: {
        const contentType = rng.pick(CONTENT_TYPES);
        return {
          mutation: `content-type:${contentType ?? "none"}`,
          body: JSON.stringify(value),
          contentType,
        };
      }
      default:
        // Over the JSON body limit (1 MiB on most routes).
        return {
          mutation: "huge-body",
          body: JSON.stringify({ fz: "H".repeat(2 * MIB) }),
          contentType: json,
        };
    }
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function stringify(value: unknown): string {
  return typeof value === "string" ? value : (JSON.stringify(value) ?? "");
}

/** Paths to every value in a JSON tree (the root too), at most three levels down. */
function leafPaths(value: unknown, prefix: (string | number)[] = []): (string | number)[][] {
  const out: (string | number)[][] = [prefix];
  if (prefix.length >= 3) return out;
  const children: [string | number, unknown][] = Array.isArray(value)
    ? value.map((item, i) => [i, item])
    : isRecord(value)
      ? Object.entries(value)
      : [];
  for (const [key, child] of children) out.push(...leafPaths(child, [...prefix, key]));
  return out;
}

function setAt(value: unknown, path: (string | number)[], replacement: unknown): unknown {
  const [head, ...rest] = path;
  if (head === undefined) return replacement;
  if (Array.isArray(value)) {
    const copy = [...value];
    copy[Number(head)] = setAt(copy[Number(head)], rest, replacement);
    return copy;
  }
  const copy: Record<string, unknown> = isRecord(value) ? { ...value } : {};
  copy[String(head)] = setAt(copy[String(head)], rest, replacement);
  return copy;
}

/** Every operation of the document, in document order. */
export function operationsOf(
  doc: OpenApiDocument,
): { method: string; path: string; operation: OpenApiOperation }[] {
  const out: { method: string; path: string; operation: OpenApiOperation }[] = [];
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const [method, operation] of Object.entries(methods)) {
      if (["get", "put", "post", "delete", "patch"].includes(method)) out.push({ method, path, operation });
    }
  }
  return out;
}

/** Requests no HTTP client would send, written on a bare socket. */
export function rawCases(targets: FuzzTargets): { name: string; bytes: string; answers?: number }[] {
  const auth = `Authorization: Bearer ${targets.userKey}\r\n`;
  const sbx = `/v1/sandboxes/${targets.sandboxId}`;
  return [
    { name: "not http", bytes: "GARBAGE\r\n\r\n" },
    {
      name: "dashboard: encoded traversal",
      bytes: "GET /..%2f..%2f..%2fetc%2fpasswd HTTP/1.1\r\nHost: x\r\n\r\n",
    },
    {
      name: "dashboard: NUL, as a browser asks",
      bytes: "GET /assets/a%00.js HTTP/1.1\r\nHost: x\r\nAccept: text/html\r\n\r\n",
    },
    { name: "dashboard: bad percent-encoding", bytes: "GET /%E0%A4%A HTTP/1.1\r\nHost: x\r\n\r\n" },
    { name: "api: bad percent-encoding", bytes: "GET /v1/sandboxes/%E0%A4%A HTTP/1.1\r\nHost: x\r\n\r\n" },
    { name: "binary", bytes: "\u0000\u0001\u0002\u00ff\r\n\r\n" },
    { name: "http/0.9", bytes: "GET /\r\n\r\n" },
    { name: "http/2 preface", bytes: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" },
    { name: "unknown method", bytes: "FROB /healthz HTTP/1.1\r\nHost: x\r\n\r\n" },
    { name: "absolute uri", bytes: "GET http://evil.example/healthz HTTP/1.1\r\nHost: x\r\n\r\n" },
    { name: "asterisk", bytes: "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n" },
    { name: "no host", bytes: "GET /healthz HTTP/1.1\r\n\r\n" },
    { name: "two hosts", bytes: "GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n" },
    { name: "space in path", bytes: `GET ${sbx}/files?path=a b HTTP/1.1\r\nHost: x\r\n${auth}\r\n` },
    { name: "raw utf-8 in path", bytes: `GET ${sbx}/files?path=ü HTTP/1.1\r\nHost: x\r\n${auth}\r\n` },
    {
      name: "dot segments",
      bytes: `GET /v1/sandboxes/../../../etc/passwd HTTP/1.1\r\nHost: x\r\n${auth}\r\n`,
    },
    {
      name: "header overflow",
      bytes: `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(70_000)}\r\n\r\n`,
    },
    { name: "many headers", bytes: `GET /healthz HTTP/1.1\r\nHost: x\r\n${"X-A: b\r\n".repeat(3000)}\r\n` },
    { name: "header without colon", bytes: "GET /healthz HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n" },
    { name: "obs-fold", bytes: "GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: b\r\n c\r\n\r\n" },
    {
      name: "bad content-length",
      bytes: "POST /v1/sandboxes HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    },
    {
      name: "negative content-length",
      bytes: "POST /v1/sandboxes HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    },
    {
      name: "two content-lengths",
      bytes: "POST /v1/sandboxes HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
    },
    {
      name: "smuggling: te and cl",
      bytes:
        "POST /v1/sandboxes HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    },
    {
      name: "bad chunk size",
      bytes: `POST ${sbx}/exec HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n`,
    },
    {
      name: "chunked json",
      bytes: `POST ${sbx}/exec HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{"cm\r\n9\r\nd":"true"\r\n1\r\n}\r\n0\r\n\r\n`,
    },
    {
      name: "chunked upload refused",
      bytes: `PUT /v1/sandboxes/sbx_missing/files/content?path=a HTTP/1.1\r\nHost: x\r\n${auth}Transfer-Encoding: chunked\r\n\r\n10\r\n${"a".repeat(16)}\r\n0\r\n\r\n`,
    },
    {
      name: "pipelined",
      bytes: `GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET ${sbx} HTTP/1.1\r\nHost: x\r\n${auth}\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\n`,
      answers: 3,
    },
    {
      // The sandbox takes part of the body before it refuses the path; the rest must not stall
      // the request after it on the same connection.
      name: "keep-alive after a refused upload",
      bytes: `PUT ${sbx}/files/content?path=../fz HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: ${MIB}\r\n\r\n${"u".repeat(MIB)}GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n`,
      answers: 2,
    },
    {
      name: "expect 100-continue refused",
      bytes: `PUT /v1/sandboxes/sbx_missing/files/content?path=a HTTP/1.1\r\nHost: x\r\n${auth}Expect: 100-continue\r\nContent-Length: 10\r\n\r\n`,
    },
    { name: "unknown expectation", bytes: "GET /healthz HTTP/1.1\r\nHost: x\r\nExpect: fz\r\n\r\n" },
    {
      name: "websocket upgrade with a bad key",
      bytes: `GET ${sbx}/pty HTTP/1.1\r\nHost: x\r\n${auth}Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: x\r\n\r\n`,
    },
    {
      name: "websocket upgrade, wrong version",
      bytes: `GET ${sbx}/pty HTTP/1.1\r\nHost: x\r\n${auth}Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 99\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
    },
    {
      name: "upgrade to something else",
      bytes: `GET ${sbx} HTTP/1.1\r\nHost: x\r\n${auth}Connection: Upgrade\r\nUpgrade: h2c\r\n\r\n`,
    },
  ];
}
