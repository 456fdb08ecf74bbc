/**
 * What the image store needs from elsewhere: a file system for layer directories (the storage pool),
 * a way to build the default base root file system, and a way to run a Dockerfile RUN step in a
 * sandbox. Each is handed to the ImageService, so tests and the real server differ only here.
 */
import type { SandboxImage } from "@polydev/core";

/**
 * The storage pool's shape: directories under `root`, optionally limited in bytes, that can be
 * cloned copy-on-write. `rel` paths are relative to `root`; the results are absolute host paths.
 */
export interface ImageStorage {
  readonly root: string;
  /** Creates an empty directory (and its parents); an existing one is an error. */
  createDir(rel: string, limitBytes: number | null): Promise<string>;
  /** Copies `from` (an absolute path) to `to` (relative), owners and modes kept, reflinked where possible. */
  cloneDir(from: string, to: string, limitBytes: number | null): Promise<string>;
  /** Removes the directory and everything in it; an absent one is fine. */
  removeDir(rel: string): Promise<void>;
}

/** Builds (or returns the cached) default root file system; resolves to its directory. */
export type BuildBase = (onProgress: (line: string) => void) => Promise<string>;

export interface RunStepRequest {
  /** The image so far: the step runs on top of its layers. */
  parent: SandboxImage;
  argv: string[];
  env: Record<string, string>;
  workdir: string;
  user: string | undefined;
  onOutput(chunk: string): void;
  signal: AbortSignal;
}

export interface RunStepResult {
  exitCode: number;
  /** The step's changes as an overlay-format upper directory, already created in the storage. */
  layerDir: string;
}

/** Runs one RUN step in a sandbox made from `parent` (with egress) and hands back what it changed. */
export type RunStep = (request: RunStepRequest) => Promise<RunStepResult>;
