// The subset of tar-stream 2.x this package uses (it ships no types; no @types dependency needed).
declare module "tar-stream" {
  import type { Readable, Writable } from "node:stream";

  export interface Headers {
    name: string;
    size?: number;
    mode?: number;
    mtime?: Date;
    type?:
      | "file"
      | "link"
      | "symlink"
      | "directory"
      | "character-device"
      | "block-device"
      | "fifo"
      | "contiguous-file"
      | null;
    linkname?: string | null;
    uid?: number;
    gid?: number;
    pax?: Record<string, string> | null;
  }

  export interface Extract extends Writable {
    // Internals of 2.x (the line is frozen: 3.x is a rewrite), used only to cap metadata records.
    _header:
      | Headers
      | { type: "pax-header" | "pax-global-header" | "gnu-long-path" | "gnu-long-link-path" }
      | null;
    _parse(size: number, onparse: () => void): void;
    on(
      event: "entry",
      listener: (header: Headers, stream: Readable, next: (error?: Error) => void) => void,
    ): this;
    on(event: string | symbol, listener: (...args: unknown[]) => void): this;
  }

  export interface Pack extends Readable {
    entry(header: Headers, content?: string | Buffer, callback?: (error?: Error) => void): Writable;
    finalize(): void;
  }

  export function extract(options?: { filenameEncoding?: string; allowUnknownFormat?: boolean }): Extract;
  export function pack(): Pack;
}
