import { defineConfig } from 'vite';

// The gateway serves the built files at /app (gateway/src/http/app-routes.ts). Preact's automatic JSX
// runtime comes from tsconfig.json (jsxImportSource), which Vite's esbuild step reads.
export default defineConfig({
  base: '/app/',
  build: { outDir: 'dist', emptyOutDir: true, sourcemap: true, target: 'es2022' },
});
