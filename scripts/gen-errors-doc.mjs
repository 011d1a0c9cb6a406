#!/usr/bin/env node
// Regenerates docs/errors.md from the error registry in dist/errors.js (run `npm run build`
// first). test/unit/errors.test.ts fails when the committed file differs from this output.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { renderErrorsDoc } from '../dist/errors-doc.js';

const target = fileURLToPath(new URL('../docs/errors.md', import.meta.url));
writeFileSync(target, renderErrorsDoc());
process.stdout.write(`wrote ${target}\n`);
