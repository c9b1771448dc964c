// Builds the SDK (dist/sdk.js) and the panel (dist/panel.js) as ES modules
// with esbuild; the code they share is one chunk, not two copies. The types
// (dist/types) come from tsc.
import { rmSync } from "node:fs";
import { build } from "esbuild";

rmSync("dist", { recursive: true, force: true });

await build({
  entryPoints: { sdk: "src/index.ts", panel: "src/panel.ts" },
  outdir: "dist",
  bundle: true,
  splitting: true,
  format: "esm",
  target: "es2022",
  chunkNames: "shared",
  legalComments: "none",
  logLevel: "warning",
});
