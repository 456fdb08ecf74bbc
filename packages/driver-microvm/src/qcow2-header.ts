/**
 * What the driver reads of a qcow2's header (QEMU's qcow2 specification: magic "QFI\xfb", then
 * `backing_file_offset` as a big-endian u64 at byte 8, `backing_file_size` as a u32 at byte 16,
 * the virtual size as a u64 at byte 24). Read directly rather than through `qemu-img info`: the
 * file may be open in a running QEMU, whose image lock qemu-img would respect, and the cache's
 * pruning walks every sandbox's chain without a process per layer.
 */
import { open } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { PolydevError } from "@polydev/core";

const MAGIC = 0x514649fb;
/** The specification limits a backing file name to 1023 bytes. */
const MAX_NAME_BYTES = 1023;
/** A chain longer than this is not one the driver made (forks add one layer each). */
const MAX_CHAIN = 64;

/** The absolute path of `file`'s backing file, or undefined (none, not a qcow2, unreadable). */
export async function qcow2BackingFile(file: string): Promise<string | undefined> {
  const handle = await open(file, "r").catch(() => undefined);
  if (handle === undefined) return undefined;
  try {
    const header = Buffer.alloc(20);
    const { bytesRead } = await handle.read(header, 0, header.length, 0);
    if (bytesRead < header.length || header.readUInt32BE(0) !== MAGIC) return undefined;
    const offset = header.readBigUInt64BE(8);
    const size = header.readUInt32BE(16);
    if (offset === 0n || size === 0 || size > MAX_NAME_BYTES || offset > BigInt(Number.MAX_SAFE_INTEGER))
      return undefined;
    const name = Buffer.alloc(size);
    const read = await handle.read(name, 0, size, Number(offset));
    if (read.bytesRead < size) return undefined;
    // A relative name is relative to the qcow2's own directory, as QEMU reads it.
    return resolve(dirname(file), name.toString("utf8"));
  } finally {
    await handle.close();
  }
}

/** Every file below `top` in its backing chain (top excluded), nearest first. */
export async function qcow2Chain(top: string): Promise<string[]> {
  const chain: string[] = [];
  let current = top;
  while (chain.length < MAX_CHAIN) {
    const next = await qcow2BackingFile(current);
    if (next === undefined || chain.includes(next)) break;
    chain.push(next);
    current = next;
  }
  return chain;
}

/** A qcow2's virtual size. */
export async function qcow2VirtualSize(path: string): Promise<number> {
  const file = await open(path, "r");
  try {
    const header = Buffer.alloc(32);
    const { bytesRead } = await file.read(header, 0, 32, 0);
    if (bytesRead < 32 || header.readUInt32BE(0) !== MAGIC) {
      throw new PolydevError("sandbox_failed", `${path} is not a qcow2 disk`);
    }
    return Number(header.readBigUInt64BE(24));
  } finally {
    await file.close();
  }
}
