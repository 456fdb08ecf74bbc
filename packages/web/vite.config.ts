import react from "@vitejs/plugin-react";
import { defaultClientConditions, defineConfig } from "vite";

// The server serves dist/ at `/`. `npm run dev -w @polydev/web` proxies the API to a running server
// (POLYDEV_URL, default http://127.0.0.1:7420); the Host header is kept, so cookies and the
// terminal's same-origin check work through the proxy.
const api = process.env.POLYDEV_URL ?? "http://127.0.0.1:7420";

export default defineConfig({
  root: import.meta.dirname,
  plugins: [react()],
  // "source" first: the SDK is bundled from its TypeScript, so a stale sdk/dist never leaks in.
  resolve: { conditions: ["source", ...defaultClientConditions] },
  build: { outDir: "dist", emptyOutDir: true, sourcemap: true },
  server: {
    proxy: { "/v1": { target: api, ws: true }, "/healthz": api },
  },
});
