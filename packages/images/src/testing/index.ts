export {
  runInRootfs,
  TEST_IMAGE_CACHE_DIR,
  testBaseRootfs,
  testImagesUnavailable,
  testToolbox,
} from "./image-cache.js";
export type { FakeHandler, FakeRegistry, RealRegistry } from "./registry.js";
export {
  pushOciLayout,
  REGISTRY_BINARY,
  realRegistryUnavailable,
  SKOPEO_BINARY,
  serveImage,
  sha256,
  startFakeRegistry,
  startRealRegistry,
} from "./registry.js";
