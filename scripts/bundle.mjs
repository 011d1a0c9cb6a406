#!/usr/bin/env node
// Bundles what ships: one ESM entry file per executable, dist/bundle/sevsup.mjs (bin/sevsup) and
// dist/bundle/sevsup-sim-qemu.mjs (bin/sevsup-sim-qemu, which the daemon and `sevsup run` spawn),
// plus the chunks they import on demand, and dist/bundle/sevsup-light.cjs (LIGHT_ENTRY below), instead of resolving and loading ~150 modules from
// dist/ and node_modules. Run by `npm run build` after tsc (which still makes dist/ for the
// scripts and tests that import single modules). Owns: the bundles only. Must not: change what
// the code does.
//
// Code splitting, not one file per executable: each lazy `await import('./x.js')` (a command's
// implementation, execa, pino, prom-client) stays a separate chunk that only the commands using
// it read. A single file of everything (1.1 MB; 0.55 MB minified) costs every call, `--version`
// included, the parse of all of it: about 3 times `node -e ''`'s own start-up more than this
// (measured side by side with bench/cli-start.mjs).
// No compile cache or start-up snapshot: Node 20 has neither module.enableCompileCache nor
// NODE_COMPILE_CACHE (Node 22.1+); V8 code caching through vm.Script serves CommonJS scripts only,
// and a user-land snapshot (node --build-snapshot) needs a CommonJS entry and a flag on every
// `node` call, which `#!/usr/bin/env node` bins cannot pass portably.
// Left out of the bundle and loaded from node_modules at run time, by name, through
// createRequire: unix-dgram and sockopt (native) and pino-pretty (the daemon's --log-format pretty only).
import { build } from 'esbuild';
import { readdir, readFile, rm } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const SRC = join(ROOT, 'src');
const OUT = join(ROOT, 'dist', 'bundle');

/** Each executable's entry module: what bin/<name> runs (the bins only import it). */
const ENTRIES = {
  sevsup:
    "import { exitQuietlyOnEpipe } from './src/cli/epipe.ts';\nimport { runCli } from './src/cli/main.ts';\nexitQuietlyOnEpipe(process.stdout);\nprocess.exitCode = await runCli(process.argv);\n",
  'sevsup-sim-qemu': "import { runSimQemu } from './src/platform/sim/main.ts';\nawait runSimQemu(process.argv.slice(2));\n",
};

/**
 * `new URL('<relative>', import.meta.url)` in a source file means "relative to where tsc puts
 * this file in dist/". In a bundle every module shares the bundle's import.meta.url, so each such
 * literal is rewritten to the same target, relative to dist/bundle/ (e.g. the simulator next to
 * bin/sevsup, the checkout root for the demo's assets).
 */
const keepRelativeUrls = {
  name: 'keep-relative-urls',
  setup(b) {
    b.onLoad({ filter: /\/src\/.*\.ts$/ }, async (args) => {
      const source = await readFile(args.path, 'utf8');
      const compiledDir = dirname(join(ROOT, 'dist', relative(SRC, args.path)));
      const contents = source.replace(/new URL\((['"])([^'"]+)\1, import\.meta\.url\)/g, (_, quote, rel) => {
        let target = relative(OUT, resolve(compiledDir, rel));
        if (rel.endsWith('/')) target += '/';
        if (!target.startsWith('.')) target = `./${target}`;
        return `new URL(${quote}${target}${quote}, import.meta.url)`;
      });
      return { contents, loader: 'ts' };
    });
  },
};

/**
 * commander requires node:child_process when it loads, for executable subcommands (`git`-style
 * `sevsup-<name>` files), which sevsup does not have: the builtin is about a sixth of a command's
 * start-up in Node 20. Required on first use instead; commander's code is otherwise unchanged.
 */
const lazyChildProcessInCommander = {
  name: 'lazy-child-process-in-commander',
  setup(b) {
    b.onLoad({ filter: /[\\/]node_modules[\\/]commander[\\/]lib[\\/]command\.js$/ }, async (args) => {
      const source = await readFile(args.path, 'utf8');
      const eager = "const childProcess = require('node:child_process');";
      if (!source.includes(eager)) throw new Error(`${args.path}: commander no longer has \`${eager}\`; update scripts/bundle.mjs`);
      const lazy = "const childProcess = { spawn: (...a) => require('node:child_process').spawn(...a) };";
      return { contents: source.replace(eager, lazy), loader: 'js' };
    });
  },
};

/** ENTRIES as modules `entry:<name>`, resolved from the checkout's root. */
const entryModules = {
  name: 'entries',
  setup(b) {
    b.onResolve({ filter: /^entry:/ }, (args) => ({ path: args.path.slice('entry:'.length), namespace: 'entry' }));
    b.onLoad({ filter: /.*/, namespace: 'entry' }, (args) => ({ contents: ENTRIES[args.path], resolveDir: ROOT, loader: 'js' }));
  },
};

/**
 * bin/sevsup's first step: the light commands (src/cli/light-main.ts) as one small CommonJS file,
 * required synchronously. Node starts a CommonJS entry about 12 ms sooner than an ES module one
 * (no ESM loader, no asynchronous reads per file); bin/sevsup imports the ES module bundle only
 * for the other commands.
 */
const LIGHT_ENTRY = "export { runLightCli as runLight } from './src/cli/light-main.ts';\n";

export async function bundle() {
  const light = await build({
    absWorkingDir: ROOT,
    metafile: true,
    stdin: { contents: LIGHT_ENTRY, resolveDir: ROOT, loader: 'js', sourcefile: 'entry:sevsup-light' },
    outfile: join(OUT, 'sevsup-light.cjs'),
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    plugins: [keepRelativeUrls],
    legalComments: 'none',
    minifyWhitespace: true,
    minifySyntax: true,
    // import.meta is empty in CommonJS: a light command that came to need it must fail the build.
    logOverride: { 'empty-import-meta': 'error' },
    logLevel: 'warning',
  });
  const result = await build({
    absWorkingDir: ROOT, // the metafile's output paths are relative to it
    metafile: true,
    entryPoints: Object.fromEntries(Object.keys(ENTRIES).map((name) => [name, `entry:${name}`])),
    outdir: OUT,
    outExtension: { '.js': '.mjs' },
    splitting: true,
    // Chunks beside the entries: the rewritten relative URLs assume every file is in dist/bundle/.
    chunkNames: '[name]-[hash]',
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    // CommonJS dependencies (pino, prom-client…) call require() for Node built-ins: give the
    // bundle a real one.
    banner: {
      js: "import { createRequire as __sevsupCreateRequire } from 'node:module';\nconst require = __sevsupCreateRequire(import.meta.url);",
    },
    external: ['unix-dgram', 'sockopt', 'pino-pretty'],
    plugins: [entryModules, keepRelativeUrls, lazyChildProcessInCommander],
    legalComments: 'none',
    // Less to read and parse on every call (about 15% less CPU to load `sevsup run`'s chunks);
    // names are kept, so stack traces (SEVSUP_DEBUG=1) still name functions.
    minifyWhitespace: true,
    minifySyntax: true,
    logLevel: 'warning',
  });
  // Stale chunks of an earlier build go only now, after the new files are in place: a CLI call
  // started during a rebuild still finds its entry file.
  const current = new Set(
    [...Object.keys(result.metafile.outputs), ...Object.keys(light.metafile.outputs)].map((out) => resolve(ROOT, out)),
  );
  for (const name of await readdir(OUT)) {
    if (!current.has(join(OUT, name))) await rm(join(OUT, name), { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await bundle();
