/** Image archives built in memory for tests: tars, an OCI layout of a two-layer image. */
import { createHash } from "node:crypto";
import { gzipSync } from "node:zlib";
import { MEDIA_TYPES } from "@polydev/images";
import { type Headers, pack } from "tar-stream";

export interface Entry {
  header: Headers;
  content?: Buffer | string;
}

export function tarOf(entries: readonly Entry[]): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const archive = pack();
    const chunks: Buffer[] = [];
    archive.on("data", (chunk: Buffer) => chunks.push(chunk));
    archive.on("end", () => resolve(Buffer.concat(chunks)));
    archive.on("error", reject);
    // A fixed mtime: tar-stream's default is "now", and the same entries must make the same bytes.
    for (const { header, content } of entries) archive.entry({ mtime: new Date(0), ...header }, content);
    archive.finalize();
  });
}

export const file = (
  name: string,
  content: Buffer | string,
  mode = 0o644,
  owner: [number, number] = [0, 0],
): Entry => ({
  header: { name, type: "file", mode, size: Buffer.byteLength(content), uid: owner[0], gid: owner[1] },
  content,
});
export const dir = (name: string, owner: [number, number] = [0, 0]): Entry => ({
  header: { name, type: "directory", mode: 0o755, uid: owner[0], gid: owner[1] },
});
export const sha = (data: Buffer | string): string =>
  `sha256:${createHash("sha256").update(data).digest("hex")}`;
export const json = (value: unknown): Buffer => Buffer.from(JSON.stringify(value));

/** Two layers: the second whites out etc/gone; a user-owned home and a setuid tool. */
export async function sampleImage(extraTop: Entry[] = []) {
  const base = await tarOf([
    dir("etc/"),
    file("etc/keep", "kept\n"),
    file("etc/gone", "removed by the next layer\n"),
    dir("bin/"),
    file("bin/tool", "#!/bin/sh\necho tool\n", 0o4755),
    dir("home/"),
    dir("home/user/", [1000, 1000]),
    file("home/user/.profile", "export A=1\n", 0o644, [1000, 1000]),
  ]);
  const top = await tarOf([file("etc/.wh.gone", ""), file("etc/new", "added\n"), ...extraTop]);
  const topGz = gzipSync(top);
  const config = json({
    architecture: "amd64",
    os: "linux",
    config: { Env: ["PATH=/usr/bin:/bin", "LANG=C.UTF-8"], Cmd: ["sh"], WorkingDir: "/work", User: "user" },
    rootfs: { type: "layers", diff_ids: [sha(base), sha(top)] },
  });
  const manifest = json({
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.ociManifest,
    config: { mediaType: MEDIA_TYPES.ociConfig, digest: sha(config), size: config.length },
    layers: [
      { mediaType: MEDIA_TYPES.layerTar, digest: sha(base), size: base.length },
      { mediaType: MEDIA_TYPES.layerGzip, digest: sha(topGz), size: topGz.length },
    ],
  });
  return { blobs: [base, topGz, config, manifest], manifest };
}

export async function ociArchive(extraTop: Entry[] = []): Promise<Buffer> {
  const { blobs, manifest } = await sampleImage(extraTop);
  return tarOf([
    file("oci-layout", JSON.stringify({ imageLayoutVersion: "1.0.0" })),
    file(
      "index.json",
      JSON.stringify({
        schemaVersion: 2,
        manifests: [{ mediaType: MEDIA_TYPES.ociManifest, digest: sha(manifest), size: manifest.length }],
      }),
    ),
    dir("blobs/"),
    dir("blobs/sha256/"),
    ...blobs.map((blob) => file(`blobs/sha256/${sha(blob).slice(7)}`, blob)),
  ]);
}
