export type { UnpackLayerOptions, UnpackLayerResult } from "./unpack-layer.js";
export { DEFAULT_MAX_PATH_LENGTH, MAX_METADATA_RECORD_BYTES, unpackLayer } from "./unpack-layer.js";
