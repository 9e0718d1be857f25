import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// Static build into dist/, served by nginx at "/"; the chat answers come
// from ngx_http_c1_module at /api/chat on the same origin.
export default defineConfig({
  plugins: [react()],
  base: "/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    // The SDK (with mermaid, katex, charts) is one ~4 MB chunk; that is expected.
    chunkSizeWarningLimit: 6000,
    reportCompressedSize: false,
  },
});
