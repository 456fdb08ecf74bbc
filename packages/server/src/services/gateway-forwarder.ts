/**
 * The piece of the gateway tunnel that runs inside a sandbox: it listens on the sandbox's own
 * loopback and carries every connection over its stdin/stdout, which the agent channel links to
 * the server. It needs no network and works for every driver, because it is only an exec.
 *
 * Written in Python (present on the hosts we target, about 9 MiB while it runs) because nothing
 * in a base system multiplexes sockets over stdio; it only runs while a sandbox uses the gateway.
 * Frames: u8 kind | u32 connection | u32 length | payload. Kinds: 0 ready, 1 data, 2 close, 3 open.
 */
export const FORWARDER_SCRIPT = `
import os, selectors, socket, struct, sys
port = int(sys.argv[1])
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", port))
server.listen(128)
out = sys.stdout.buffer
def send(kind, cid, data=b""):
    out.write(struct.pack(">BII", kind, cid, len(data)) + data)
    out.flush()
sel = selectors.DefaultSelector()
sel.register(server, selectors.EVENT_READ, "accept")
sel.register(0, selectors.EVENT_READ, "stdin")
conns, ids, pending, next_id = {}, {}, b"", 1
send(0, 0)
while True:
    for key, _ in sel.select():
        if key.data == "accept":
            conn, _ = server.accept()
            cid, next_id = next_id, next_id + 1
            conns[cid] = conn
            ids[conn.fileno()] = cid
            sel.register(conn, selectors.EVENT_READ, "conn")
            send(3, cid)
        elif key.data == "stdin":
            chunk = os.read(0, 65536)
            if not chunk:
                sys.exit(0)
            pending += chunk
            while len(pending) >= 9:
                kind, cid, length = struct.unpack(">BII", pending[:9])
                if len(pending) < 9 + length:
                    break
                payload, pending = pending[9:9 + length], pending[9 + length:]
                conn = conns.get(cid)
                if conn is None:
                    continue
                if kind == 1:
                    try:
                        conn.sendall(payload)
                    except OSError:
                        pass
                elif kind == 2:
                    try:
                        conn.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
        else:
            conn = key.fileobj
            cid = ids[conn.fileno()]
            try:
                data = conn.recv(65536)
            except OSError:
                data = b""
            if data:
                send(1, cid, data)
            else:
                send(2, cid)
                sel.unregister(conn)
                del ids[conn.fileno()]
                conns.pop(cid, None)
                conn.close()
`;
