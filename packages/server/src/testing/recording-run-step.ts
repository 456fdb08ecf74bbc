/**
 * A stand-in for the sandbox that runs a Dockerfile's RUN steps (the lead's runner): the command is
 * NOT executed. Each call writes `ran-<n>` (the request as JSON) into a fresh directory of the
 * storage, as a real step's upper directory would hold its changes, and prints `ran: <argv>`. A
 * command containing `exit <n>` ends with that code; one containing `hold` waits for `release()`.
 */
import { randomUUID } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { ImageStorage, RunStep, RunStepRequest } from "../services/image-ports.js";

export class RecordingRunStep {
  readonly calls: RunStepRequest[] = [];
  private held: (() => void)[] = [];

  constructor(private readonly storage: ImageStorage) {}

  release(): void {
    for (const resume of this.held) resume();
    this.held = [];
  }

  get holding(): number {
    return this.held.length;
  }

  readonly run: RunStep = async (request) => {
    this.calls.push(request);
    const n = this.calls.length;
    const dir = await this.storage.createDir(`steps/${randomUUID()}`, null);
    const text = request.argv.join(" ");
    request.onOutput(`ran: ${text}\n`);
    if (text.includes("hold")) await new Promise<void>((resume) => this.held.push(resume));
    const { parent, argv, env, workdir, user } = request;
    await writeFile(
      join(dir, `ran-${n}`),
      JSON.stringify({ layers: parent.layers, argv, env, workdir, user }),
    );
    const exit = /exit (\d+)/.exec(text);
    return { exitCode: exit ? Number(exit[1]) : 0, layerDir: dir };
  };
}
