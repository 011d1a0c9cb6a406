// Test helper: a plain-JS copy of a src module and its relative imports, so a separate Node
// process (Node 20 cannot run .ts) can use the real code, e.g. to prove a detached QEMU outlives
// the process that launched it. The copy lives under node_modules/.cache so that its bare
// imports (execa, pino) resolve to this checkout's packages.
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { REPO } from '../../test/support/it-env.js';

export interface Transpiled {
  /** Directory holding `src/...js`; write driver scripts here. */
  readonly dir: string;
  remove(): void;
}

/** Transpile `entry` (a path under src/) and every module it imports relatively. */
export function transpileForNode(entry: string): Transpiled {
  const dir = join(REPO, 'node_modules', '.cache', `sevsup-it-${randomBytes(4).toString('hex')}`);
  const pending = [resolve(REPO, entry)];
  const done = new Set<string>();
  while (pending.length > 0) {
    const file = pending.pop();
    if (file === undefined || done.has(file)) continue;
    done.add(file);
    const source = readFileSync(file, 'utf8');
    const { outputText } = ts.transpileModule(source, {
      fileName: file,
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: true },
    });
    const out = join(dir, relative(REPO, file)).replace(/\.ts$/, '.js');
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, outputText);
    for (const match of source.matchAll(/^import\s+(?!type\b)[^'"]*from\s+'(\.{1,2}\/[^']+)\.js';/gm)) {
      const spec = match[1];
      if (spec !== undefined) pending.push(resolve(dirname(file), `${spec}.ts`));
    }
  }
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
