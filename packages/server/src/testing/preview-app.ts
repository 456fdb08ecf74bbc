/**
 * A small web app the preview tests run inside a sandbox (python3's standard library only):
 * pages, a header echo, a body echo, a stream, an answer that never comes, a cookie setter, and
 * a WebSocket echo (the handshake and frames written by hand; the standard library has none).
 */
import type { ApiClient } from "./harness.js";

export const PREVIEW_APP_PY = String.raw`
import base64, hashlib, json, socket, struct, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(sys.argv[1])
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out as separate writes: without this, Nagle and delayed ACKs stall
    # every keep-alive answer by ~40 ms, which would swamp what the benchmark measures.
    disable_nagle_algorithm = True
    def log_message(self, *args):
        pass
    def send_text(self, status, body, ctype="text/plain", extra=()):
        data = body.encode()
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(data)))
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
    def do_GET(self):
        if self.headers.get("upgrade", "").lower() == "websocket":
            return self.websocket()
        path = self.path
        if path.startswith("/hello"):
            return self.send_text(200, "hello from port %d path %s" % (PORT, path))
        if path == "/headers":
            return self.send_text(200, json.dumps({k.lower(): v for k, v in self.headers.items()}), "application/json")
        if path == "/" or path == "/page.html":
            return self.send_text(200, PAGE, "text/html; charset=utf-8")
        if path == "/data.json":
            return self.send_text(200, json.dumps({"secret": "preview-data-%d" % PORT}), "application/json")
        if path == "/cookie":
            return self.send_text(200, "set", extra=[("set-cookie", "app=1; Path=/; Domain=localhost; HttpOnly"), ("set-cookie", "polydev_session=evil; Path=/")])
        if path == "/close-after":
            # Answers, then closes the kept-alive connection, saying so (as servers do).
            self.close_connection = True
            return self.send_text(200, "closing", extra=[("connection", "close")])
        if path == "/big-header":
            return self.send_text(200, "too big", extra=[("x-big", "y" * 40000)])
        if path == "/redirect":
            self.send_response(302)
            self.send_header("location", "/hello/after")
            self.send_header("content-length", "0")
            self.end_headers()
            return
        if path == "/slow":
            time.sleep(3600)
        if path.startswith("/stream"):
            n = int(path.split("=")[1])
            self.send_response(200)
            self.send_header("content-type", "application/octet-stream")
            self.send_header("content-length", str(n))
            self.end_headers()
            chunk = b"x" * 65536
            while n > 0:
                self.wfile.write(chunk[: min(n, len(chunk))])
                n -= min(n, len(chunk))
            return
        if path == "/hang-body":
            self.send_response(200)
            self.send_header("content-type", "text/plain")
            self.send_header("content-length", "1000000")
            self.end_headers()
            self.wfile.write(b"started")
            self.wfile.flush()
            time.sleep(3600)
        return self.send_text(404, "no such page %s" % path)
    def do_POST(self):
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    break
                body += self.rfile.read(size)
                self.rfile.readline()
        else:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
        self.send_response(200)
        self.send_header("content-type", "application/octet-stream")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def websocket(self):
        key = self.headers["sec-websocket-key"]
        accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        self.send_response(101)
        self.send_header("upgrade", "websocket")
        self.send_header("connection", "Upgrade")
        self.send_header("sec-websocket-accept", accept)
        self.end_headers()
        self.wfile.flush()
        rf, wf = self.rfile, self.wfile
        while True:
            head = rf.read(2)
            if len(head) < 2:
                return
            opcode = head[0] & 0x0F
            length = head[1] & 0x7F
            if length == 126:
                length = struct.unpack(">H", rf.read(2))[0]
            elif length == 127:
                length = struct.unpack(">Q", rf.read(8))[0]
            mask = rf.read(4) if head[1] & 0x80 else b"\0\0\0\0"
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(rf.read(length)))
            if opcode == 8:
                wf.write(b"\x88\x00")
                wf.flush()
                return
            if opcode == 1:
                out = ("echo:" + data.decode()).encode()
                if len(out) < 126:
                    wf.write(bytes([0x81, len(out)]) + out)
                else:
                    wf.write(bytes([0x81, 126]) + struct.pack(">H", len(out)) + out)
                wf.flush()

PAGE = """<!doctype html><title>preview page</title><h1 id="h">preview page on port %d</h1>""" % PORT

ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
`;

/** Writes the app into the sandbox, starts it on `port` and waits until the port listens. */
export async function startPreviewApp(
  api: ApiClient,
  sandboxId: string,
  port: number,
  page?: string,
): Promise<void> {
  const source =
    page === undefined
      ? PREVIEW_APP_PY
      : PREVIEW_APP_PY.replace(/^PAGE = .*$/m, () => `PAGE = ${JSON.stringify(page)}`);
  const put = await fetch(`${api.url}/v1/sandboxes/${sandboxId}/files/content?path=preview-app-${port}.py`, {
    method: "PUT",
    headers: { authorization: `Bearer ${api.key}`, "content-type": "application/octet-stream" },
    body: source,
  });
  if (put.status !== 201) throw new Error(`upload failed: ${put.status} ${await put.text()}`);
  const started = await api.call("POST", `/v1/sandboxes/${sandboxId}/processes`, {
    cmd: ["python3", `/home/user/preview-app-${port}.py`, String(port)],
  });
  if (started.status !== 201)
    throw new Error(`start failed: ${started.status} ${JSON.stringify(started.body)}`);
  // Readiness is the port listening, asked of the sandbox itself (no fixed sleep).
  for (let attempt = 0; attempt < 200; attempt++) {
    const ports = await api.call<{ items: { port: number }[] }>("GET", `/v1/sandboxes/${sandboxId}/ports`);
    if (ports.body.items?.some((p) => p.port === port)) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`the preview app never listened on ${port}`);
}
