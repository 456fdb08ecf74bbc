/**
 * Runs inside the test's network namespace (`ip netns exec`): the "outside world" of the
 * egress tests. HTTP on 80 answers with the Host it got; TLS on 443 answers with the SNI it
 * got; 7000 echoes; 7001 speaks first (like SSH) and then echoes. Prints "ready" when listening.
 */
import { readFileSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import { createServer as createTcpServer } from "node:net";
import { createServer as createTlsServer } from "node:tls";

const [certFile, keyFile] = process.argv.slice(2);
if (certFile === undefined || keyFile === undefined) throw new Error("usage: netns-servers <cert> <key>");

const http = createHttpServer((request, response) => {
  const chunks: Buffer[] = [];
  request.on("data", (chunk: Buffer) => chunks.push(chunk));
  request.on("end", () => {
    response.end(`host=${request.headers.host ?? ""} body=${Buffer.concat(chunks).length}`);
  });
});
const tls = createTlsServer({ cert: readFileSync(certFile), key: readFileSync(keyFile) }, (socket) => {
  socket.on("error", () => socket.destroy());
  socket.once("data", () => socket.end(`sni=${socket.servername || ""}`));
});
const echo = createTcpServer((socket) => {
  socket.on("error", () => socket.destroy());
  socket.pipe(socket);
});
const banner = createTcpServer((socket) => {
  socket.on("error", () => socket.destroy());
  socket.write("HELLO\n");
  socket.pipe(socket);
});

let listening = 0;
const ready = (): void => {
  listening += 1;
  if (listening === 4) process.stdout.write("ready\n");
};
http.listen(80, "0.0.0.0", ready);
tls.listen(443, "0.0.0.0", ready);
echo.listen(7000, "0.0.0.0", ready);
banner.listen(7001, "0.0.0.0", ready);
