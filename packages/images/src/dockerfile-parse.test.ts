// biome-ignore-all lint/suspicious/noTemplateCurlyInString: Dockerfile text holds ${VAR} on purpose
import { isPolydevError } from "@polydev/core";
import { describe, expect, it } from "vitest";
import {
  type CopyStep,
  contextDigest,
  type DockerfilePlan,
  layerCacheKeys,
  type ParseDockerfileOptions,
  parseDockerfile,
  type RunStep,
} from "./dockerfile-parse.js";

const BASE = `sha256:${"b".repeat(64)}`;
const FILE_A = { path: "package.json", mode: 0o100644, sha256: `sha256:${"1".repeat(64)}` };
const FILE_B = { path: "src/index.js", mode: 0o100644, sha256: `sha256:${"2".repeat(64)}` };

const REALISTIC = `# syntax=docker/dockerfile:1
# A small Node app
ARG NODE_TAG=20
FROM polydev/base:\${NODE_TAG} AS app
ENV NODE_ENV=production APP_HOME="/srv/my app"
WORKDIR $APP_HOME
RUN apt-get update \\
 && apt-get install -y jq
COPY --chown=user:user package.json src/ ./
RUN ["npm", "ci", "--omit=dev"]
USER user
LABEL org.opencontainers.image.title="my app" version=1
EXPOSE 8080 9000/udp
ENTRYPOINT ["node"]
CMD ["src/index.js"]
`;

function keys(text: string, files = [FILE_A, FILE_B], options?: ParseDockerfileOptions): string[] {
  const plan = parseDockerfile(text, options);
  return layerCacheKeys(plan, BASE, () => contextDigest(files)).map((k) => k.key);
}

function refusal(text: string, options?: ParseDockerfileOptions) {
  try {
    parseDockerfile(text, options);
  } catch (error) {
    if (!isPolydevError(error)) throw error;
    return { code: error.code, message: error.message, line: error.details?.line };
  }
  throw new Error("parsed, expected a refusal");
}

describe("parseDockerfile", () => {
  it("parses a realistic Dockerfile into steps and config", () => {
    const plan: DockerfilePlan = parseDockerfile(REALISTIC);
    expect(plan.from).toEqual({ name: "polydev/base", tag: "20" });
    expect(plan.stage).toBe("app");
    expect(plan.steps.map((s) => [s.kind, s.line, s.layer])).toEqual([
      ["ENV", 5, false],
      ["WORKDIR", 6, false],
      ["RUN", 7, true],
      ["COPY", 9, true],
      ["RUN", 10, true],
      ["USER", 11, false],
      ["LABEL", 12, false],
      ["EXPOSE", 13, false],
      ["ENTRYPOINT", 14, false],
      ["CMD", 15, false],
    ]);
    const [run1, copy, run2] = plan.steps.filter((s) => s.layer) as [RunStep, CopyStep, RunStep];
    expect(run1.command).toEqual({
      form: "shell",
      argv: ["/bin/sh", "-c", "apt-get update  && apt-get install -y jq"],
    });
    expect(run1.env).toEqual({ APP_HOME: "/srv/my app", NODE_ENV: "production" });
    expect(run1.workdir).toBe("/srv/my app");
    expect(run1.user).toBeUndefined();
    expect(copy).toMatchObject({
      kind: "COPY",
      sources: ["package.json", "src"],
      dest: "/srv/my app",
      destIsDir: true,
      chown: "user:user",
    });
    expect(run2.command).toEqual({ form: "exec", argv: ["npm", "ci", "--omit=dev"] });
    expect(plan.config).toEqual({
      env: { NODE_ENV: "production", APP_HOME: "/srv/my app" },
      workdir: "/srv/my app",
      user: "user",
      labels: { "org.opencontainers.image.title": "my app", version: "1" },
      entrypoint: { form: "exec", argv: ["node"] },
      cmd: { form: "exec", argv: ["src/index.js"] },
      exposedPorts: ["8080/tcp", "9000/udp"],
    });
  });

  it("takes here-strings and shifts in RUN as shell text, not heredocs", () => {
    const plan = parseDockerfile('FROM debian\nRUN cat <<<"hi" && echo $((1<<2))\n');
    expect((plan.steps[0] as RunStep).command.argv[2]).toBe('cat <<<"hi" && echo $((1<<2))');
    expect(refusal("FROM debian\nCOPY <<-'EOF' /x\n").message).toMatch(/heredocs/);
  });

  it("accepts FROM with a registry port, a tag and a digest", () => {
    const digest = `sha256:${"a".repeat(64)}`;
    expect(parseDockerfile(`FROM localhost:5000/team/img:v1@${digest}`).from).toEqual({
      name: "localhost:5000/team/img",
      tag: "v1",
      digest,
    });
    expect(parseDockerfile("FROM debian").from).toEqual({ name: "debian", tag: "latest" });
  });
});

describe("cache keys", () => {
  it("are the same for the same file twice", () => {
    expect(keys(REALISTIC)).toEqual(keys(REALISTIC));
    expect(keys(REALISTIC)).toHaveLength(3);
    expect(new Set(keys(REALISTIC)).size).toBe(3);
  });

  it("change for a changed RUN and every later step, not earlier ones", () => {
    const before = keys(REALISTIC);
    const after = keys(REALISTIC.replace("install -y jq", "install -y jq curl"));
    expect(after[0]).not.toBe(before[0]);
    expect(after[1]).not.toBe(before[1]);
    expect(after[2]).not.toBe(before[2]);
    const lastChanged = keys(REALISTIC.replace('"--omit=dev"', '"--omit=optional"'));
    expect(lastChanged.slice(0, 2)).toEqual(before.slice(0, 2));
    expect(lastChanged[2]).not.toBe(before[2]);
  });

  it("change from the COPY step on when a context file changes", () => {
    const before = keys(REALISTIC);
    const after = keys(REALISTIC, [FILE_A, { ...FILE_B, sha256: `sha256:${"3".repeat(64)}` }]);
    expect(after[0]).toBe(before[0]);
    expect(after[1]).not.toBe(before[1]);
    expect(after[2]).not.toBe(before[2]);
    const mode = keys(REALISTIC, [FILE_A, { ...FILE_B, mode: 0o100755 }]);
    expect(mode[1]).not.toBe(before[1]);
  });

  it("depend on the parent image key", () => {
    const plan = parseDockerfile(REALISTIC);
    const other = layerCacheKeys(plan, `sha256:${"c".repeat(64)}`, () => contextDigest([FILE_A]));
    const base = layerCacheKeys(plan, BASE, () => contextDigest([FILE_A]));
    expect(other.map((k) => k.key)).not.toContain(base[0]?.key);
  });

  it("change when an ENV, WORKDIR, USER or ARG before a RUN changes", () => {
    const plain = "FROM debian\nRUN make\n";
    const base = keys(plain);
    expect(keys("FROM debian\nENV CC=clang\nRUN make\n")).not.toEqual(base);
    expect(keys("FROM debian\nENV CC=clang\nRUN make\n")).not.toEqual(
      keys("FROM debian\nENV CC=gcc\nRUN make\n"),
    );
    expect(keys("FROM debian\nWORKDIR /src\nRUN make\n")).not.toEqual(base);
    expect(keys("FROM debian\nUSER user\nRUN make\n")).not.toEqual(base);
    expect(keys("FROM debian\nARG V=1\nRUN make\n")).not.toEqual(keys("FROM debian\nARG V=2\nRUN make\n"));
    // a config-only instruction after the last RUN makes no layer and changes no key
    expect(keys("FROM debian\nRUN make\nENV LATE=1\nCMD make\n")).toEqual(base);
  });

  it("contextDigest ignores order and sees every field", () => {
    expect(contextDigest([FILE_A, FILE_B])).toBe(contextDigest([FILE_B, FILE_A]));
    expect(contextDigest([FILE_A, FILE_B])).not.toBe(contextDigest([FILE_A]));
    expect(contextDigest([FILE_A])).not.toBe(contextDigest([{ ...FILE_A, path: "other.json" }]));
    expect(contextDigest([FILE_A])).not.toBe(contextDigest([{ ...FILE_A, mode: 0o100600 }]));
  });
});

describe("refusals", () => {
  const cases: [string, string, number, RegExp][] = [
    ["unknown instruction", "FROM debian\nRUN true\nFROBNICATE x\n", 3, /unknown instruction "FROBNICATE"/],
    ["unsupported instruction", "FROM debian\nVOLUME /data\n", 2, /VOLUME is not supported/],
    ["missing FROM", "# nothing\nRUN make\n", 2, /before FROM/],
    ["no FROM at all", "ARG X=1\n", 1, /no FROM instruction/],
    ["empty Dockerfile", "\n# just a comment\n", 1, /no FROM instruction/],
    ["multi-stage", "FROM debian AS a\nRUN true\nFROM debian\n", 3, /multi-stage builds are not supported/],
    ["COPY --from", "FROM debian\nCOPY --from=a /x /y\n", 2, /--from is multi-stage/],
    [
      "ADD url",
      "FROM debian\nADD https://example.com/x.tgz /x\n",
      2,
      /ADD <url> is not supported; use RUN curl/,
    ],
    ["heredoc", "FROM debian\nRUN <<EOF\necho hi\nEOF\n", 2, /heredocs/],
    ["COPY out of the context", "FROM debian\nCOPY ../secret /x\n", 2, /outside the build context/],
    ["COPY one argument", "FROM debian\nCOPY onlyone\n", 2, /at least one source and a destination/],
    ["several sources, file dest", "FROM debian\nCOPY a b /dst\n", 2, /ending in \//],
    ["bad image name", "FROM Not_Valid!\n", 1, /not an image reference/],
    ["bad digest", "FROM debian@sha256:abc\n", 1, /not an image reference/],
    ["bad platform", "FROM --platform=linux/arm64 debian\n", 1, /--platform/],
    ["ENV without value", "FROM debian\nENV ONLYKEY\n", 2, /needs a value/],
    ["ENV pair without =", "FROM debian\nENV A=1 B\n", 2, /has no "="/],
    ["unterminated quote", 'FROM debian\nENV A="x\n', 2, /unterminated/],
    ["bad substitution", "FROM debian\nWORKDIR ${X:?oops}\n", 2, /unsupported substitution/],
    ["RUN --mount", "FROM debian\nRUN --mount=type=cache,target=/x make\n", 2, /RUN flags/],
    ["empty RUN", "FROM debian\nRUN\n", 2, /needs arguments/],
    ["bad EXPOSE", "FROM debian\nEXPOSE http\n", 2, /EXPOSE/],
    ["bad ARG name", "FROM debian\nARG 1X=2\n", 2, /ARG name/],
    ["bad escape directive", "# escape=x\nFROM debian\n", 1, /escape directive/],
    ["continued instruction keeps its first line", "FROM debian\nRUN a \\\n  b\nBOGUS\n", 4, /BOGUS/],
  ];
  for (const [name, text, line, message] of cases) {
    it(`${name}: invalid_request naming line ${line}`, () => {
      const error = refusal(text);
      expect(error.code).toBe("invalid_request");
      expect(error.line).toBe(line);
      expect(error.message).toContain(`line ${line}:`);
      expect(error.message).toMatch(message);
    });
  }

  it("bounds give payload_too_large", () => {
    // over 1 MiB in 20 lines, each under the line bound and far under the instruction bound
    const big = refusal(`FROM debian\n${`RUN ${"x".repeat(60 * 1024)}\n`.repeat(20)}`);
    expect(big).toMatchObject({ code: "payload_too_large" });
    expect(big.message).toMatch(/longer than 1048576 bytes/);
    const long = refusal(`FROM debian\nRUN ${"x".repeat(64 * 1024)}\n`);
    expect(long).toMatchObject({ code: "payload_too_large", line: 2 });
    const many = refusal(`FROM debian\n${"RUN true\n".repeat(1000)}`);
    expect(many).toMatchObject({ code: "payload_too_large", line: 1001 });
    // at the bounds: accepted
    expect(parseDockerfile(`FROM debian\n${"RUN true\n".repeat(999)}`).steps).toHaveLength(999);
    expect(parseDockerfile(`FROM debian\nRUN ${"x".repeat(64 * 1024 - 4)}\n`).steps).toHaveLength(1);
  });
});

describe("substitution", () => {
  const envOf = (text: string, options?: ParseDockerfileOptions) => parseDockerfile(text, options).config.env;

  it("expands $VAR, ${VAR}, defaults and alternatives in ENV", () => {
    expect(
      envOf(
        "FROM debian\nENV A=one\nENV B=$A C=${A}x D=${UNSET:-dflt} E=${A:-dflt} F=${A:+alt} G=${UNSET:+alt} H=${EMPTY-x}\n",
      ),
    ).toEqual({ A: "one", B: "one", C: "onex", D: "dflt", E: "one", F: "alt", G: "", H: "x" });
  });

  it("uses the values before the instruction within one ENV", () => {
    expect(envOf("FROM debian\nENV A=1\nENV A=2 B=$A\n")).toEqual({ A: "2", B: "1" });
  });

  it("leaves single quotes and escaped dollars alone", () => {
    expect(envOf("FROM debian\nENV A=x\nENV B='$A' C=\\$A D=\"$A\"\n")).toEqual({
      A: "x",
      B: "$A",
      C: "$A",
      D: "x",
    });
  });

  it("does not substitute in RUN, CMD or ENTRYPOINT", () => {
    const plan = parseDockerfile("FROM debian\nENV A=x\nRUN echo $A\nCMD echo ${A}\n");
    expect((plan.steps[1] as RunStep).command.argv[2]).toBe("echo $A");
    expect(plan.config.cmd?.argv[2]).toBe("echo ${A}");
  });

  it("substitutes in FROM, WORKDIR, USER, COPY, LABEL and EXPOSE", () => {
    const plan = parseDockerfile(
      "ARG IMG=debian\nFROM ${IMG}:12\nARG U=app\nENV D=/opt P=8000 SRC=lib\nWORKDIR $D/x\nUSER ${U}:${U}\nCOPY --chown=$U $SRC ./\nLABEL who=$U\nEXPOSE $P\n",
    );
    expect(plan.from).toEqual({ name: "debian", tag: "12" });
    expect(plan.config).toMatchObject({ workdir: "/opt/x", user: "app:app", labels: { who: "app" } });
    expect(plan.config.exposedPorts).toEqual(["8000/tcp"]);
    expect(plan.steps.find((s) => s.kind === "COPY")).toMatchObject({
      sources: ["lib"],
      dest: "/opt/x",
      chown: "app",
    });
  });

  it("takes ARG defaults, buildArgs over them, and ENV over ARG", () => {
    const text =
      "ARG TAG=11\nFROM debian:$TAG\nARG TAG\nARG MODE=dev\nRUN make\nENV MODE=env\nWORKDIR /$MODE\n";
    const plain = parseDockerfile(text);
    expect(plain.from.tag).toBe("11");
    expect((plain.steps[2] as RunStep).args).toEqual({ MODE: "dev", TAG: "11" });
    expect(plain.config.workdir).toBe("/env");
    const given = parseDockerfile(text, { buildArgs: { TAG: "12", MODE: "prod", OTHER: "x" } });
    expect(given.from.tag).toBe("12");
    expect((given.steps[2] as RunStep).args).toEqual({ MODE: "prod", TAG: "12" });
    expect(given.unusedBuildArgs).toEqual(["OTHER"]);
    // an ARG from before FROM is not visible after it unless declared again
    expect(parseDockerfile("ARG X=1\nFROM debian\nWORKDIR /a${X}\n").config.workdir).toBe("/a");
  });

  it("starts from the base image's ENV and WORKDIR when given", () => {
    const plan = parseDockerfile("FROM debian\nENV PATH=$PATH:/opt/bin\nWORKDIR sub\n", {
      base: { env: { PATH: "/usr/bin" }, workdir: "/app" },
    });
    expect(plan.config.env.PATH).toBe("/usr/bin:/opt/bin");
    expect(plan.config.workdir).toBe("/app/sub");
  });

  it("keeps the legacy ENV form's spaces", () => {
    expect(envOf("FROM debian\nENV GREETING hello   big world\n")).toEqual({ GREETING: "hello   big world" });
  });
});

describe("continuations, comments and the escape directive", () => {
  it("joins continued lines and drops comment lines inside them", () => {
    const plan = parseDockerfile("FROM debian\nRUN echo a \\\n# a comment\n   b \\\n\n  c\n");
    expect((plan.steps[0] as RunStep).command.argv[2]).toBe("echo a    b   c");
  });

  it("uses the backtick escape directive", () => {
    const plan = parseDockerfile("# escape=`\nFROM debian\nRUN echo a `\n  b\nCOPY C:\\x\\y /dst/\n");
    expect((plan.steps[0] as RunStep).command.argv[2]).toBe("echo a   b");
    // with ` as escape, \ is an ordinary character
    expect(plan.steps[1]).toMatchObject({ sources: ["C:\\x\\y"] });
    // without the directive, \ escapes and a trailing ` is text
    const plain = parseDockerfile("FROM debian\nRUN echo a `\nENV A=x\\y\n");
    expect((plain.steps[0] as RunStep).command.argv[2]).toBe("echo a `");
    expect(plain.config.env.A).toBe("xy");
  });

  it("takes a directive only at the top", () => {
    const plan = parseDockerfile("FROM debian\n# escape=`\nRUN echo a \\\n  b\n");
    expect((plan.steps[0] as RunStep).command.argv[2]).toBe("echo a   b");
  });

  it("handles CRLF line ends", () => {
    const plan = parseDockerfile("FROM debian\r\nRUN a \\\r\n  b\r\n");
    expect((plan.steps[0] as RunStep).command.argv[2]).toBe("a   b");
  });
});
