export type { UnpackLayerOptions, UnpackLayerResult } from "./unpack-layer.js";
export { DEFAULT_MAX_PATH_LENGTH, unpackLayer } from "./unpack-layer.js";
