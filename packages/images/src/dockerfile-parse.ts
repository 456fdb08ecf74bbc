import { createHash } from "node:crypto";
import { posix } from "node:path";
import { PolydevError } from "@polydev/core";
import type { ImageReference } from "./registry-reference.js";
import { parseImageReference } from "./registry-reference.js";

/** Bounds on an untrusted Dockerfile. Over any of them is `payload_too_large`. */
export const DOCKERFILE_MAX_BYTES = 1024 * 1024;
export const DOCKERFILE_MAX_INSTRUCTIONS = 1000;
export const DOCKERFILE_MAX_LINE_BYTES = 64 * 1024;

/** The image a Dockerfile starts FROM, named as written. */
export interface FromImage {
  name: string;
  tag: string;
  digest?: string;
}

/** A command as the builder will run it: shell form is `["/bin/sh", "-c", text]`. */
export interface DockerCommand {
  form: "shell" | "exec";
  argv: string[];
}

/** The state in effect when a layer step runs (ENV, ARG values visible to RUN, WORKDIR, USER). */
export interface StepState {
  env: Record<string, string>;
  args: Record<string, string>;
  workdir: string;
  user?: string;
}

interface StepBase {
  /** 1-based line where the instruction starts. */
  line: number;
  /** The instruction text as written (continuations joined). */
  text: string;
}

export interface RunStep extends StepBase, StepState {
  kind: "RUN";
  layer: true;
  command: DockerCommand;
}

export interface CopyStep extends StepBase, StepState {
  kind: "COPY" | "ADD";
  layer: true;
  /** Context-relative, normalized, never leaving the context ("." is the whole context). */
  sources: string[];
  /** Absolute (resolved against WORKDIR), normalized. */
  dest: string;
  /** The destination is a directory (written with a trailing `/`, or several sources). */
  destIsDir: boolean;
  chown?: string;
  chmod?: string;
}

export interface ConfigStep extends StepBase {
  kind: "ENV" | "WORKDIR" | "USER" | "ARG" | "LABEL" | "CMD" | "ENTRYPOINT" | "EXPOSE";
  layer: false;
}

export type LayerStep = RunStep | CopyStep;
export type DockerfileStep = LayerStep | ConfigStep;

export interface DockerfileConfig {
  env: Record<string, string>;
  workdir?: string;
  user?: string;
  labels: Record<string, string>;
  /** Undefined: not set by the Dockerfile (the builder keeps the base image's). */
  cmd?: DockerCommand;
  entrypoint?: DockerCommand;
  exposedPorts: string[];
}

export interface DockerfilePlan {
  from: FromImage;
  /** `FROM … AS name`, kept for messages only (one stage). */
  stage?: string;
  steps: DockerfileStep[];
  config: DockerfileConfig;
  /** buildArgs given but not declared by any ARG (Docker warns about them). */
  unusedBuildArgs: string[];
}

export interface ParseDockerfileOptions {
  buildArgs?: Record<string, string>;
  /** The base image's config, when known: the start of ENV, WORKDIR and USER for substitution. */
  base?: { env?: Record<string, string>; workdir?: string; user?: string };
}

const SHELL = ["/bin/sh", "-c"];
const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const SUPPORTED = new Set([
  "FROM",
  "RUN",
  "COPY",
  "ADD",
  "ENV",
  "WORKDIR",
  "USER",
  "ARG",
  "LABEL",
  "CMD",
  "ENTRYPOINT",
  "EXPOSE",
]);
const UNSUPPORTED: Record<string, string> = {
  ONBUILD: "ONBUILD is not supported; put the instructions in the Dockerfile that needs them",
  HEALTHCHECK: "HEALTHCHECK is not supported; Polydev sandboxes have no health checks",
  SHELL: 'SHELL is not supported; use RUN ["bash", "-c", "…"] (exec form) instead',
  STOPSIGNAL: "STOPSIGNAL is not supported; remove it",
  VOLUME: "VOLUME is not supported; the sandbox's disk is durable already, remove it",
  MAINTAINER: 'MAINTAINER is not supported; use LABEL maintainer="…"',
};

function invalid(line: number, message: string): PolydevError {
  return new PolydevError("invalid_request", `Dockerfile line ${line}: ${message}`, { details: { line } });
}

function tooLarge(message: string, line?: number): PolydevError {
  return new PolydevError(
    "payload_too_large",
    line === undefined ? `Dockerfile: ${message}` : `Dockerfile line ${line}: ${message}`,
    { details: line === undefined ? {} : { line } },
  );
}

interface LogicalLine {
  line: number;
  keyword: string;
  rest: string;
  text: string;
}

/** Splits into instructions: parser directives, comments, blank lines and continuations handled. */
function logicalLines(text: string): { escapeChar: string; lines: LogicalLine[] } {
  if (Buffer.byteLength(text) > DOCKERFILE_MAX_BYTES) {
    throw tooLarge(`longer than ${DOCKERFILE_MAX_BYTES} bytes`);
  }
  const physical = text.replace(/^\uFEFF/, "").split(/\r?\n/);
  let escapeChar = "\\";
  let index = 0;
  const seen = new Set<string>();
  for (; index < physical.length; index++) {
    const match = /^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.*?)\s*$/.exec(physical[index] ?? "");
    if (!match) break;
    const name = (match[1] ?? "").toLowerCase();
    const value = match[2] ?? "";
    if (name !== "escape" && name !== "syntax" && name !== "check") break; // an ordinary comment
    if (seen.has(name)) throw invalid(index + 1, `the ${name} directive is given twice; keep one`);
    seen.add(name);
    if (name === "escape") {
      if (value !== "\\" && value !== "`") {
        throw invalid(index + 1, `escape directive ${JSON.stringify(value)}: use \\ or \``);
      }
      escapeChar = value;
    }
  }
  const lines: LogicalLine[] = [];
  let current: { line: number; text: string } | undefined;
  const continuation = new RegExp(`${escapeChar === "\\" ? "\\\\" : "`"}[ \\t]*$`);
  for (; index < physical.length; index++) {
    const raw = physical[index] ?? "";
    if (Buffer.byteLength(raw) > DOCKERFILE_MAX_LINE_BYTES) {
      throw tooLarge(`line longer than ${DOCKERFILE_MAX_LINE_BYTES} bytes`, index + 1);
    }
    const trimmed = raw.trim();
    if (trimmed === "" || trimmed.startsWith("#")) continue; // also inside a continuation, as Docker
    const continues = continuation.test(raw);
    const piece = continues ? raw.replace(continuation, "") : raw;
    if (current === undefined) current = { line: index + 1, text: piece.replace(/^\s+/, "") };
    else current.text += piece;
    if (!continues) {
      lines.push(split(current));
      current = undefined;
    }
  }
  if (current !== undefined && current.text.trim() !== "") lines.push(split(current));
  return { escapeChar, lines };
}

function split({ line, text }: { line: number; text: string }): LogicalLine {
  const match = /^(\S+)\s*([\s\S]*)$/.exec(text.trim());
  return { line, keyword: (match?.[1] ?? "").toUpperCase(), rest: match?.[2] ?? "", text: text.trim() };
}

type Lookup = (name: string) => string | undefined;

/**
 * Docker's word processing: quotes, the escape character and `$VAR`, `${VAR}`, `${VAR:-w}`, `${VAR-w}`,
 * `${VAR:+w}`, `${VAR+w}`. With `split`, unquoted white space separates words.
 */
function expand(
  text: string,
  lookup: Lookup,
  escapeChar: string,
  split: boolean,
  fail: (m: string) => Error,
) {
  const words: string[] = [];
  let current = "";
  let inWord = false;
  let i = 0;
  const substitute = (): string => {
    // text[i] === "$"
    const next = text[i + 1];
    if (next === "{") {
      let depth = 1;
      let j = i + 2;
      for (; j < text.length && depth > 0; j++) {
        if (text[j] === "{") depth++;
        else if (text[j] === "}") depth--;
      }
      if (depth > 0) throw fail(`unterminated \${ in ${JSON.stringify(text)}`);
      const inner = text.slice(i + 2, j - 1);
      i = j;
      const match = /^([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-+])([\s\S]*))?$/.exec(inner);
      if (!match) {
        throw fail(
          `unsupported substitution \${${inner}}: use $VAR, \${VAR}, \${VAR:-default} or \${VAR:+alt}`,
        );
      }
      const value = lookup(match[1] ?? "");
      const op = match[2];
      if (op === undefined) return value ?? "";
      const word = () => expand(match[3] ?? "", lookup, escapeChar, false, fail)[0] ?? "";
      switch (op) {
        case ":-":
          return value === undefined || value === "" ? word() : value;
        case "-":
          return value === undefined ? word() : value;
        case ":+":
          return value === undefined || value === "" ? "" : word();
        default:
          return value === undefined ? "" : word();
      }
    }
    const match = /^[A-Za-z_][A-Za-z0-9_]*/.exec(text.slice(i + 1));
    if (!match) {
      i++;
      return "$";
    }
    i += 1 + match[0].length;
    return lookup(match[0]) ?? "";
  };
  while (i < text.length) {
    const c = text[i] as string;
    if (split && /\s/.test(c)) {
      if (inWord) words.push(current);
      current = "";
      inWord = false;
      i++;
      continue;
    }
    inWord = true;
    if (c === escapeChar) {
      current += i + 1 < text.length ? text[i + 1] : c;
      i += 2;
    } else if (c === "'") {
      const end = text.indexOf("'", i + 1);
      if (end < 0) throw fail(`unterminated single quote in ${JSON.stringify(text)}`);
      current += text.slice(i + 1, end);
      i = end + 1;
    } else if (c === '"') {
      i++;
      for (;;) {
        if (i >= text.length) throw fail(`unterminated double quote in ${JSON.stringify(text)}`);
        const d = text[i] as string;
        if (d === '"') {
          i++;
          break;
        }
        const e = text[i + 1];
        if (d === escapeChar && (e === '"' || e === "$" || e === escapeChar)) {
          current += e;
          i += 2;
        } else if (d === "$") current += substitute();
        else {
          current += d;
          i++;
        }
      }
    } else if (c === "$") current += substitute();
    else {
      current += c;
      i++;
    }
  }
  if (inWord) words.push(current);
  return words;
}

/** Splits on unquoted white space keeping quotes and escapes (for ENV/LABEL/ARG `k=v` pairs). */
function rawWords(text: string, escapeChar: string, fail: (m: string) => Error): string[] {
  const words: string[] = [];
  let current = "";
  let quote: string | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (c === escapeChar && i + 1 < text.length && quote !== "'") {
      current += c + text[i + 1];
      i++;
    } else if (quote !== undefined) {
      current += c;
      if (c === quote) quote = undefined;
    } else if (c === "'" || c === '"') {
      quote = c;
      current += c;
    } else if (/\s/.test(c)) {
      if (current !== "") words.push(current);
      current = "";
    } else current += c;
  }
  if (quote !== undefined) throw fail(`unterminated quote in ${JSON.stringify(text)}`);
  if (current !== "") words.push(current);
  return words;
}

function jsonArray(rest: string): string[] | undefined {
  const trimmed = rest.trim();
  if (!trimmed.startsWith("[")) return undefined;
  try {
    const value: unknown = JSON.parse(trimmed);
    if (Array.isArray(value) && value.every((item) => typeof item === "string")) return value as string[];
  } catch {
    // not JSON: Docker takes it as shell form
  }
  return undefined;
}

// `<<EOF`, `<<-EOF`, `<<"EOF"`; not a here-string (`<<<`) nor a shift (`1<<2`)
const HEREDOC = /(?<!<)<<-?\s*(["']?)[A-Za-z_][A-Za-z0-9_]*\1/;
const URL_SOURCE = /^(?:[a-zA-Z][a-zA-Z0-9+.-]*:\/\/|git@)/;

/**
 * FROM's image, checked by the one reference grammar the registry client uses too, and named as
 * the Dockerfile writes it (the registry client resolves `debian` to Docker Hub when it pulls).
 */
function fromImage(reference: string, fail: (m: string) => Error): FromImage {
  let parsed: ImageReference;
  try {
    parsed = parseImageReference(reference);
  } catch (error) {
    throw fail(error instanceof Error ? error.message : String(error));
  }
  let name = reference.split("@")[0] ?? reference;
  const colon = name.lastIndexOf(":");
  if (colon > name.lastIndexOf("/")) name = name.slice(0, colon);
  const tag = parsed.tag ?? "latest";
  return parsed.digest === undefined ? { name, tag } : { name, tag, digest: parsed.digest };
}

/** Normalizes a COPY/ADD source to a context-relative path; refuses one that leaves the context. */
export function normalizeContextSource(source: string): string | undefined {
  if (source.includes("\0")) return undefined;
  const normalized = posix.normalize(source.replace(/^\/+/, "") || ".");
  const relative = normalized.replace(/\/+$/, "") || ".";
  if (relative === ".." || relative.startsWith("../")) return undefined;
  return relative;
}

/** Parses a Dockerfile into a plan; pure (no file system, no network). */
export function parseDockerfile(text: string, options: ParseDockerfileOptions = {}): DockerfilePlan {
  const { escapeChar, lines } = logicalLines(text);
  if (lines.length > DOCKERFILE_MAX_INSTRUCTIONS) {
    throw tooLarge(
      `more than ${DOCKERFILE_MAX_INSTRUCTIONS} instructions`,
      lines[DOCKERFILE_MAX_INSTRUCTIONS]?.line,
    );
  }
  const buildArgs = options.buildArgs ?? {};
  const declared = new Set<string>();
  const globalArgs = new Map<string, string | undefined>();
  const args = new Map<string, string | undefined>();
  const env: Record<string, string> = { ...(options.base?.env ?? {}) };
  let workdir = options.base?.workdir || "/";
  let workdirSet = options.base?.workdir !== undefined && options.base.workdir !== "";
  let user = options.base?.user || undefined;
  const labels: Record<string, string> = {};
  let cmd: DockerCommand | undefined;
  let entrypoint: DockerCommand | undefined;
  const exposedPorts: string[] = [];
  const steps: DockerfileStep[] = [];
  let from: FromImage | undefined;
  let stage: string | undefined;

  const argValue = (name: string, fallback: string | undefined): string | undefined =>
    Object.hasOwn(buildArgs, name) ? buildArgs[name] : fallback;

  for (const { line, keyword, rest, text: instruction } of lines) {
    const fail = (message: string) => invalid(line, message);
    const lookup: Lookup = (name) => {
      if (Object.hasOwn(env, name)) return env[name];
      if (from === undefined) return globalArgs.get(name);
      return args.get(name);
    };
    const words = (value: string) => expand(value, lookup, escapeChar, true, fail);
    const word = (value: string) => expand(value, lookup, escapeChar, false, fail)[0] ?? "";
    const state = (): StepState => ({
      env: sorted(env),
      args: sorted(Object.fromEntries([...args].filter((e): e is [string, string] => e[1] !== undefined))),
      workdir,
      ...(user === undefined ? {} : { user }),
    });
    const configStep = (kind: ConfigStep["kind"]) =>
      steps.push({ kind, layer: false, line, text: instruction });

    if (!SUPPORTED.has(keyword)) {
      const why = UNSUPPORTED[keyword];
      throw fail(
        why ??
          `unknown instruction ${JSON.stringify(keyword)}: use FROM, RUN, COPY, ADD, ENV, WORKDIR, USER, ARG, LABEL, CMD, ENTRYPOINT or EXPOSE`,
      );
    }
    if (from === undefined && keyword !== "FROM" && keyword !== "ARG") {
      throw fail(
        `${keyword} before FROM: a Dockerfile must start with FROM <image> (only ARG may come before it)`,
      );
    }
    if (rest.trim() === "") throw fail(`${keyword} needs arguments`);
    if ((keyword === "RUN" || keyword === "COPY" || keyword === "ADD") && HEREDOC.test(rest)) {
      throw fail(`heredocs (<<EOF) are not supported in ${keyword}; COPY a script file and RUN it instead`);
    }

    switch (keyword) {
      case "FROM": {
        if (from !== undefined) {
          throw fail("multi-stage builds are not supported (a second FROM); build a single stage");
        }
        const parts = words(rest);
        while (parts[0]?.startsWith("--")) {
          const flag = parts.shift() as string;
          if (flag !== "--platform=linux/amd64") {
            throw fail(`FROM ${flag} is not supported; images are linux/amd64, remove the flag`);
          }
        }
        if (
          parts.length === 2 ||
          parts.length > 3 ||
          (parts.length === 3 && parts[1]?.toUpperCase() !== "AS")
        ) {
          throw fail("FROM takes one image: FROM name[:tag][@digest] [AS stage]");
        }
        if (parts.length === 3) {
          stage = parts[2] as string;
          if (!/^[a-zA-Z][a-zA-Z0-9_.-]*$/.test(stage))
            throw fail(`stage name ${JSON.stringify(stage)} is not valid`);
        }
        from = fromImage(parts[0] ?? "", fail);
        break;
      }
      case "ARG": {
        for (const raw of rawWords(rest, escapeChar, fail)) {
          const eq = raw.indexOf("=");
          const name = eq < 0 ? raw : raw.slice(0, eq);
          if (!NAME.test(name))
            throw fail(`ARG name ${JSON.stringify(name)} is not valid: use letters, digits, _`);
          declared.add(name);
          const fallback =
            eq < 0 ? (from === undefined ? undefined : globalArgs.get(name)) : word(raw.slice(eq + 1));
          (from === undefined ? globalArgs : args).set(name, argValue(name, fallback));
        }
        if (from !== undefined) configStep("ARG");
        break;
      }
      case "RUN": {
        if (/^\s*--/.test(rest)) {
          throw fail(`RUN flags (${rest.trim().split(/\s/)[0]}) are not supported; remove them`);
        }
        const exec = jsonArray(rest);
        if (exec !== undefined && exec.length === 0) throw fail("RUN [] has no command");
        const command: DockerCommand =
          exec === undefined
            ? { form: "shell", argv: [...SHELL, rest.trim()] }
            : { form: "exec", argv: exec };
        steps.push({ kind: "RUN", layer: true, line, text: instruction, command, ...state() });
        break;
      }
      case "COPY":
      case "ADD": {
        let body = rest;
        let chown: string | undefined;
        let chmod: string | undefined;
        for (;;) {
          const flag = /^--([a-z-]+)(?:=(\S*))?\s*/.exec(body);
          if (!flag) break;
          body = body.slice(flag[0].length);
          const value = word(flag[2] ?? "");
          if (flag[1] === "chown" && /^[^:\s]+(?::[^:\s]+)?$/.test(value)) chown = value;
          else if (flag[1] === "chmod" && /^[0-7]{3,4}$/.test(value)) chmod = value;
          else if (flag[1] === "from") {
            throw fail(
              `${keyword} --from is multi-stage, which is not supported; copy from the build context`,
            );
          } else if (flag[1] === "chown" || flag[1] === "chmod") {
            throw fail(`${keyword} --${flag[1]}=${JSON.stringify(value)} is not valid`);
          } else throw fail(`${keyword} --${flag[1]} is not supported; use --chown or --chmod only`);
        }
        const exec = jsonArray(body);
        const parts = exec === undefined ? words(body) : exec.map(word);
        if (parts.length < 2) throw fail(`${keyword} needs at least one source and a destination`);
        const rawDest = parts.pop() as string;
        const sources = parts.map((source) => {
          if (keyword === "ADD" && URL_SOURCE.test(source)) {
            throw fail("ADD <url> is not supported; use RUN curl");
          }
          const normalized = normalizeContextSource(source);
          if (normalized === undefined) {
            throw fail(
              `${keyword} source ${JSON.stringify(source)} is outside the build context; copy from inside it`,
            );
          }
          return normalized;
        });
        const destIsDir = rawDest.endsWith("/") || rawDest === "." || rawDest.endsWith("/.");
        if (sources.length > 1 && !destIsDir) {
          throw fail(`${keyword} with several sources needs a directory destination ending in /`);
        }
        if (rawDest === "" || rawDest.includes("\0")) throw fail(`${keyword} destination is empty`);
        const dest = posix.normalize(posix.resolve(workdir, rawDest));
        steps.push({
          kind: keyword,
          layer: true,
          line,
          text: instruction,
          sources,
          dest,
          destIsDir,
          ...(chown === undefined ? {} : { chown }),
          ...(chmod === undefined ? {} : { chmod }),
          ...state(),
        });
        break;
      }
      case "ENV":
      case "LABEL": {
        const pairs = keyValues(rest, escapeChar, word, fail, keyword);
        for (const [key, value] of pairs) {
          if (keyword === "ENV") env[key] = value;
          else labels[key] = value;
        }
        configStep(keyword);
        break;
      }
      case "WORKDIR": {
        const value = word(rest.trim());
        if (value === "" || value.includes("\0")) throw fail("WORKDIR needs a path");
        workdir = posix.normalize(posix.resolve(workdir, value));
        workdirSet = true;
        configStep("WORKDIR");
        break;
      }
      case "USER": {
        const value = word(rest.trim());
        if (!/^[^:\s]+(?::[^:\s]+)?$/.test(value))
          throw fail(`USER ${JSON.stringify(value)}: use user[:group]`);
        user = value;
        configStep("USER");
        break;
      }
      case "CMD":
      case "ENTRYPOINT": {
        const exec = jsonArray(rest);
        const command: DockerCommand =
          exec === undefined
            ? { form: "shell", argv: [...SHELL, rest.trim()] }
            : { form: "exec", argv: exec };
        if (keyword === "CMD") cmd = command;
        else entrypoint = command;
        configStep(keyword);
        break;
      }
      case "EXPOSE": {
        for (const port of words(rest)) {
          const match = /^([0-9]{1,5})(?:-([0-9]{1,5}))?(?:\/(tcp|udp|sctp))?$/i.exec(port);
          if (!match || Number(match[1]) > 65535 || Number(match[2] ?? 0) > 65535) {
            throw fail(`EXPOSE ${JSON.stringify(port)}: use port[/tcp|udp]`);
          }
          const normalized = `${match[1]}${match[2] ? `-${match[2]}` : ""}/${(match[3] ?? "tcp").toLowerCase()}`;
          if (!exposedPorts.includes(normalized)) exposedPorts.push(normalized);
        }
        configStep("EXPOSE");
        break;
      }
    }
  }
  if (from === undefined) {
    throw invalid(lines[0]?.line ?? 1, "no FROM instruction: a Dockerfile must start with FROM <image>");
  }
  const unusedBuildArgs = Object.keys(buildArgs)
    .filter((name) => !declared.has(name))
    .sort();
  return {
    from,
    ...(stage === undefined ? {} : { stage }),
    steps,
    config: {
      env: { ...env },
      ...(workdirSet ? { workdir } : {}),
      ...(user === undefined ? {} : { user }),
      labels,
      ...(cmd === undefined ? {} : { cmd }),
      ...(entrypoint === undefined ? {} : { entrypoint }),
      exposedPorts,
    },
    unusedBuildArgs,
  };
}

function keyValues(
  rest: string,
  escapeChar: string,
  word: (value: string) => string,
  fail: (m: string) => Error,
  keyword: string,
): [string, string][] {
  const raw = rawWords(rest, escapeChar, fail);
  const first = raw[0] ?? "";
  if (!first.includes("=")) {
    // legacy `ENV key value with spaces`
    const match = /^\s*(\S+)\s+([\s\S]*)$/.exec(rest);
    if (!match) throw fail(`${keyword} ${first} needs a value: ${keyword} key=value`);
    return [[checkKey(word(match[1] ?? ""), keyword, fail), word((match[2] ?? "").trim())]];
  }
  return raw.map((pair) => {
    const eq = pair.indexOf("=");
    if (eq < 0) throw fail(`${keyword} ${JSON.stringify(pair)} has no "=": write ${keyword} key=value`);
    return [checkKey(word(pair.slice(0, eq)), keyword, fail), word(pair.slice(eq + 1))];
  });
}

function checkKey(key: string, keyword: string, fail: (m: string) => Error): string {
  if (key === "" || (keyword === "ENV" && /[=\s\0]/.test(key))) {
    throw fail(`${keyword} name ${JSON.stringify(key)} is not valid`);
  }
  return key;
}

function sorted(record: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

const sha256 = (text: string): string => `sha256:${createHash("sha256").update(text).digest("hex")}`;

/**
 * The cache key of a layer step: sha256 over the parent key (the base image's manifest digest for the
 * first layer step, else the previous layer step's key), the normalized instruction, the state in
 * effect and, for COPY/ADD, `contextDigest` of the files it copies.
 */
export function cacheKey(step: LayerStep, parentKey: string, contextDigest?: string): string {
  const instruction =
    step.kind === "RUN"
      ? { kind: step.kind, command: step.command }
      : {
          kind: step.kind,
          sources: step.sources,
          dest: step.dest,
          destIsDir: step.destIsDir,
          chown: step.chown ?? null,
          chmod: step.chmod ?? null,
        };
  if (step.kind !== "RUN" && contextDigest === undefined) {
    throw new PolydevError(
      "internal",
      `cacheKey of ${step.kind} (line ${step.line}) needs its context digest`,
    );
  }
  return sha256(
    JSON.stringify([
      "polydev-dockerfile-layer/1",
      parentKey,
      instruction,
      Object.entries(step.env),
      Object.entries(step.args),
      step.workdir,
      step.user ?? null,
      step.kind === "RUN" ? null : contextDigest,
    ]),
  );
}

/**
 * The keys of all layer steps in order, chained from `baseKey`. `contextDigestOf(step, index)` gives a
 * COPY/ADD step's `contextDigest` (index into `plan.steps`).
 */
export function layerCacheKeys(
  plan: DockerfilePlan,
  baseKey: string,
  contextDigestOf: (step: CopyStep, index: number) => string = () => {
    throw new PolydevError("internal", "COPY/ADD needs a context digest");
  },
): { index: number; step: LayerStep; key: string }[] {
  const keys: { index: number; step: LayerStep; key: string }[] = [];
  let parent = baseKey;
  plan.steps.forEach((step, index) => {
    if (!step.layer) return;
    const key = cacheKey(step, parent, step.kind === "RUN" ? undefined : contextDigestOf(step, index));
    keys.push({ index, step, key });
    parent = key;
  });
  return keys;
}

export interface ContextDigestEntry {
  path: string;
  mode: number;
  sha256: string;
}

/** sha256 over the entries sorted by path: the same set in any order gives the same digest. */
export function contextDigest(files: readonly ContextDigestEntry[]): string {
  const entries = files
    .map((file) => [file.path, file.mode, file.sha256] as const)
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[2] < b[2] ? -1 : a[2] > b[2] ? 1 : a[1] - b[1]));
  return sha256(JSON.stringify(["polydev-build-context/1", entries]));
}
