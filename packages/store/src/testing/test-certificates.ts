/** A throw-away CA and a server certificate for `localhost` signed by it, made with openssl. */
import { execFile } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);
const EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

export interface TestCertificates {
  caFile: string;
  certFile: string;
  keyFile: string;
}

export async function makeTestCertificates(dir: string): Promise<TestCertificates> {
  const file = (name: string) => join(dir, name);
  const openssl = (...args: string[]) =>
    run("openssl", args, { env: { PATH: process.env.PATH ?? "/usr/bin:/bin" } });
  await openssl(
    "req",
    "-x509",
    ...EC_KEY,
    "-keyout",
    file("ca.key"),
    "-out",
    file("ca.pem"),
    "-days",
    "2",
    "-subj",
    "/CN=polydev test CA",
  );
  await openssl(
    "req",
    ...EC_KEY,
    "-keyout",
    file("server.key"),
    "-out",
    file("server.csr"),
    "-subj",
    "/CN=localhost",
  );
  await writeFile(file("server.ext"), "subjectAltName = DNS:localhost, IP:127.0.0.1\n");
  await openssl(
    "x509",
    "-req",
    "-in",
    file("server.csr"),
    "-CA",
    file("ca.pem"),
    "-CAkey",
    file("ca.key"),
    "-CAcreateserial",
    "-out",
    file("server.pem"),
    "-days",
    "2",
    "-extfile",
    file("server.ext"),
  );
  return { caFile: file("ca.pem"), certFile: file("server.pem"), keyFile: file("server.key") };
}
