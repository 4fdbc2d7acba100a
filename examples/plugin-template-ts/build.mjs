// Builds this folder's TypeScript plugin into a WebAssembly component.
//
// 1. generates TypeScript declarations for the contract (`types/`) from the
//    WIT named in package.json (`jobrunner.wit`, `jobrunner.world`);
// 2. type-checks and compiles `src/` with tsc into `dist/js/`;
// 3. turns `dist/js/index.js` into a component with componentize-js
//    (through its JavaScript API: its command line has failed here on
//    path lookups) and writes `dist/NAME.wasm`.
//
// Compiling a JavaScript component takes tens of seconds, so the result is
// kept with the hash of everything that went into it (sources, WIT,
// package.json, tsconfig.json, this script and the componentize-js version)
// in `dist/NAME.wasm.sha256`; an unchanged plugin is not rebuilt.
// `--force` rebuilds anyway.

import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = process.cwd();
const pkg = JSON.parse(readFileSync(join(here, 'package.json'), 'utf8'));
const witPath = resolve(here, pkg.jobrunner?.wit ?? 'wit');
const world = pkg.jobrunner?.world ?? 'plugin';
const out = join(here, 'dist', `${pkg.name}.wasm`);
const stamp = `${out}.sha256`;
const force = process.argv.includes('--force');

/** Every file under `dir`, sorted, so the hash does not depend on listing order. */
function filesUnder(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true })
    .sort((a, b) => a.name.localeCompare(b.name))
    .flatMap((e) => (e.isDirectory() ? filesUnder(join(dir, e.name)) : [join(dir, e.name)]));
}

/** The version of an installed package, found by walking up from its entry point. */
function installedVersion(name) {
  let dir = dirname(fileURLToPath(import.meta.resolve(name)));
  while (!existsSync(join(dir, 'package.json')) || JSON.parse(readFileSync(join(dir, 'package.json'))).name !== name) {
    const up = dirname(dir);
    if (up === dir) throw new Error(`cannot find the version of ${name}`);
    dir = up;
  }
  return JSON.parse(readFileSync(join(dir, 'package.json'))).version;
}

function sourceHash() {
  const hash = createHash('sha256');
  const inputs = [
    ...filesUnder(join(here, 'src')),
    ...filesUnder(witPath),
    join(here, 'package.json'),
    join(here, 'tsconfig.json'),
    fileURLToPath(import.meta.url),
  ];
  for (const file of inputs) {
    hash.update(relative(here, file)).update('\0').update(readFileSync(file)).update('\0');
  }
  hash.update(`componentize-js ${installedVersion('@bytecodealliance/componentize-js')}`);
  return hash.digest('hex');
}

const digest = sourceHash();
if (!force && existsSync(out) && existsSync(stamp) && readFileSync(stamp, 'utf8').trim() === digest) {
  console.log(`${relative(here, out)} is up to date (sources unchanged, ${digest.slice(0, 12)})`);
  process.exit(0);
}

const started = Date.now();

// 1. Declarations for the contract's modules (`jobrunner:plugin/log@0.1.0`, ...).
// The preopen is set here because the type generator reads the WIT through
// WASI and, as shipped, is given no directory to read it from.
const { _setPreopens } = await import('@bytecodealliance/preview2-shim/filesystem');
const { generateGuestTypes } = await import('@bytecodealliance/jco-transpile');
_setPreopens({ '/': '/' });
const typesDir = join(here, 'types');
rmSync(typesDir, { recursive: true, force: true });
const declarations = await generateGuestTypes(witPath, { worldName: world, outDir: 'types/' });
for (const [file, bytes] of Object.entries(declarations)) {
  mkdirSync(dirname(join(here, file)), { recursive: true });
  writeFileSync(join(here, file), bytes);
}

// 2. Type-check and compile.
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
rmSync(join(here, 'dist', 'js'), { recursive: true, force: true });
const compiled = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: here, stdio: 'inherit' });
if (compiled.status !== 0) {
  console.error('tsc failed: see above');
  process.exit(1);
}

// 3. The component.
const { componentize } = await import('@bytecodealliance/componentize-js');
const { component } = await componentize({
  sourcePath: join(here, 'dist', 'js', 'index.js'),
  witPath,
  worldName: world,
});
writeFileSync(out, component);
writeFileSync(stamp, `${digest}\n`);
const size = (statSync(out).size / (1 << 20)).toFixed(1);
console.log(`built ${relative(here, out)}: ${size} MiB in ${((Date.now() - started) / 1000).toFixed(1)} s`);
