/**
 * Reads the server name (SNI, RFC 6066 §3) from the first bytes a TLS client sends. A small
 * parser of our own: the npm packages that do this are unmaintained one-file modules, and the
 * format needs ~60 lines. The ClientHello handshake message may be split over several TLS
 * records (RFC 8446 §5.1) and any record over several reads, so the caller feeds the bytes
 * seen so far and asks again while the answer is "incomplete".
 */
export type ClientHelloResult =
  | { kind: "incomplete" }
  | { kind: "not_tls" }
  /** A ClientHello; `serverName` undefined when it carries no host_name SNI (or is malformed). */
  | { kind: "client_hello"; serverName: string | undefined };

const HANDSHAKE_RECORD = 0x16;
const CLIENT_HELLO = 0x01;
const SERVER_NAME_EXTENSION = 0x0000;
const HOST_NAME = 0x00;

export function readClientHello(bytes: Buffer): ClientHelloResult {
  if (bytes.length === 0) return { kind: "incomplete" };
  if (bytes[0] !== HANDSHAKE_RECORD) return { kind: "not_tls" };
  // Reassemble the handshake bytes from consecutive handshake records.
  const fragments: Buffer[] = [];
  let handshakeLength = 0;
  let offset = 0;
  let expected: number | undefined;
  while (expected === undefined || handshakeLength < expected) {
    if (bytes.length < offset + 5) return { kind: "incomplete" };
    if (bytes[offset] !== HANDSHAKE_RECORD || bytes[offset + 1] !== 0x03) return { kind: "not_tls" };
    const recordLength = bytes.readUInt16BE(offset + 3);
    if (recordLength === 0 || recordLength > 16_384) return { kind: "not_tls" };
    if (bytes.length < offset + 5 + recordLength) return { kind: "incomplete" };
    fragments.push(bytes.subarray(offset + 5, offset + 5 + recordLength));
    handshakeLength += recordLength;
    offset += 5 + recordLength;
    if (expected === undefined && handshakeLength >= 4) {
      const head = Buffer.concat(fragments);
      if (head[0] !== CLIENT_HELLO) return { kind: "not_tls" };
      expected = 4 + head.readUIntBE(1, 3);
    }
  }
  const handshake = Buffer.concat(fragments).subarray(4, expected);
  return { kind: "client_hello", serverName: serverNameOf(handshake) };
}

/** The host_name in a ClientHello body, or undefined (absent or malformed). */
function serverNameOf(body: Buffer): string | undefined {
  const reader = new Reader(body);
  reader.skip(2 + 32); // legacy_version, random
  reader.skip(reader.u8()); // legacy_session_id
  reader.skip(reader.u16()); // cipher_suites
  reader.skip(reader.u8()); // legacy_compression_methods
  if (reader.failed || reader.remaining === 0) return undefined;
  const extensions = reader.slice(reader.u16());
  while (!extensions.failed && extensions.remaining > 0) {
    const type = extensions.u16();
    const data = extensions.slice(extensions.u16());
    if (extensions.failed) return undefined;
    if (type !== SERVER_NAME_EXTENSION) continue;
    const list = data.slice(data.u16());
    while (!list.failed && list.remaining > 0) {
      const nameType = list.u8();
      const name = list.bytes(list.u16());
      if (list.failed || name === undefined) return undefined;
      if (nameType === HOST_NAME) return name.toString("latin1");
    }
    return undefined;
  }
  return undefined;
}

/** Bounds-checked big-endian reads; any overrun sets `failed` instead of throwing. */
class Reader {
  private offset = 0;
  failed = false;

  constructor(private readonly buffer: Buffer) {}

  get remaining(): number {
    return this.failed ? 0 : this.buffer.length - this.offset;
  }

  private take(length: number): Buffer | undefined {
    if (this.failed || this.offset + length > this.buffer.length) {
      this.failed = true;
      return undefined;
    }
    const part = this.buffer.subarray(this.offset, this.offset + length);
    this.offset += length;
    return part;
  }

  u8(): number {
    return this.take(1)?.readUInt8(0) ?? 0;
  }

  u16(): number {
    return this.take(2)?.readUInt16BE(0) ?? 0;
  }

  skip(length: number): void {
    this.take(length);
  }

  bytes(length: number): Buffer | undefined {
    return this.take(length);
  }

  slice(length: number): Reader {
    const part = this.take(length);
    const reader = new Reader(part ?? Buffer.alloc(0));
    reader.failed = part === undefined;
    return reader;
  }
}
