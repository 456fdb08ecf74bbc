export type { BaseImageInputs, BuildBaseRootfsOptions, EnsureBaseRootfsOptions } from "./base-image.js";
export {
  BASE_IMAGE_ENV,
  BASE_IMAGE_NAME,
  BASE_IMAGE_PACKAGES,
  BASE_IMAGE_SCRIPT_VERSION,
  BASE_IMAGE_SUITE,
  BASE_IMAGE_USER,
  baseImageEntryName,
  baseImageKey,
  buildBaseRootfs,
  DEFAULT_DEBIAN_MIRROR,
  DEFAULT_DEBIAN_SECURITY_MIRROR,
  ensureBaseRootfs,
} from "./base-image.js";
export type { BlobPutOptions, BlobPutResult } from "./blob-store.js";
export { BlobStore, DIGEST_PATTERN, digestHex } from "./blob-store.js";
export type { CachedBuild } from "./build-cache.js";
export { ensureCachedBuild } from "./build-cache.js";
export { BUILD_ENV_PASS_THROUGH, buildEnvironmentFrom } from "./build-process.js";
export type { ContextFile, ContextFileLimits, ContextFilesResult } from "./dockerfile-context.js";
export { contextFiles } from "./dockerfile-context.js";
export type {
  ConfigStep,
  ContextDigestEntry,
  CopyStep,
  DockerCommand,
  DockerfileConfig,
  DockerfilePlan,
  DockerfileStep,
  FromImage,
  LayerStep,
  ParseDockerfileOptions,
  RunStep,
  StepState,
} from "./dockerfile-parse.js";
export {
  cacheKey,
  contextDigest,
  DOCKERFILE_MAX_BYTES,
  DOCKERFILE_MAX_INSTRUCTIONS,
  DOCKERFILE_MAX_LINE_BYTES,
  layerCacheKeys,
  parseDockerfile,
} from "./dockerfile-parse.js";
export type { ImageLayer, ImageRunConfig, ImportedImage, ImportLimits } from "./image-import.js";
export {
  DEFAULT_MAX_JSON_BYTES,
  DEFAULT_MAX_LAYERS,
  importImageArchive,
  MEDIA_TYPES,
} from "./image-import.js";
export type { ImagePasswdEntry } from "./image-passwd.js";
export { imagePasswdEntry } from "./image-passwd.js";
export type { CommitLayerOptions, CommitLayerResult } from "./layer-commit.js";
export { commitLayer, LAYER_COMMIT_MEDIA_TYPE } from "./layer-commit.js";
// Shared with the server's webhook sender, so both refuse the same destinations.
export { refusedAddressReason } from "./registry-connect.js";
export type { PullOptions } from "./registry-pull.js";
export { pullImage } from "./registry-pull.js";
export type { ImageReference } from "./registry-reference.js";
export { parseImageReference } from "./registry-reference.js";
export type { AssembleLimits, AssembleResult } from "./rootfs.js";
export { assembleRootfs, emptyDirectory } from "./rootfs.js";
export type { StoragePoolLog, StoragePoolOptions, StorageUsage } from "./storage-pool.js";
export { MIN_VOLUME_BYTES, StoragePool, VOLUME_BYTES_PER_INODE } from "./storage-pool.js";
export type { ToolboxOptions } from "./toolbox.js";
export {
  buildToolbox,
  ensureToolbox,
  TOOLBOX_CLI_PACKAGES,
  TOOLBOX_MOUNT,
  TOOLBOX_NODE_PACKAGE,
  TOOLBOX_SCRIPT_VERSION,
  toolboxEntryName,
  toolboxKey,
} from "./toolbox.js";
export type { UnpackLayerOptions, UnpackLayerResult } from "./unpack-layer.js";
export { DEFAULT_MAX_PATH_LENGTH, MAX_METADATA_RECORD_BYTES, unpackLayer } from "./unpack-layer.js";
