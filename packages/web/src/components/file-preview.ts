/**
 * What the file viewer shows of a file: its text, or a note that it is binary. Binary is what git
 * calls binary (a NUL byte in the first 8000 bytes) or what is not UTF-8; such files are offered
 * as a download instead of being drawn as mojibake.
 */
export type FilePreview =
  | { kind: "text"; text: string; truncated: boolean }
  | { kind: "binary"; truncated: boolean };

/** The viewer reads at most this much of a file; the rest is left to Download. */
export const PREVIEW_BYTES = 1024 * 1024;
const SNIFF_BYTES = 8000;

export function previewOf(bytes: Uint8Array, truncated: boolean): FilePreview {
  if (bytes.subarray(0, SNIFF_BYTES).includes(0)) return { kind: "binary", truncated };
  try {
    // stream: a character cut at the preview's end is not an error, just left out.
    const text = new TextDecoder("utf-8", { fatal: true }).decode(bytes, { stream: truncated });
    return { kind: "text", text, truncated };
  } catch {
    return { kind: "binary", truncated };
  }
}

/** Reads at most PREVIEW_BYTES of a stream, then stops it. */
export async function readPreview(stream: ReadableStream<Uint8Array>): Promise<FilePreview> {
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  let truncated = false;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      chunks.push(value);
      size += value.length;
      if (size > PREVIEW_BYTES) {
        truncated = true;
        break;
      }
    }
  } finally {
    if (truncated) await reader.cancel().catch(() => undefined);
    reader.releaseLock();
  }
  const bytes = new Uint8Array(Math.min(size, PREVIEW_BYTES));
  let offset = 0;
  for (const chunk of chunks) {
    const piece = chunk.subarray(0, bytes.length - offset);
    bytes.set(piece, offset);
    offset += piece.length;
    if (offset >= bytes.length) break;
  }
  return previewOf(bytes, truncated);
}
