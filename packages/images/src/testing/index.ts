export {
  runInRootfs,
  TEST_IMAGE_CACHE_DIR,
  testBaseRootfs,
  testImagesUnavailable,
  testToolbox,
} from "./image-cache.js";
