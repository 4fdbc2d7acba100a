// Copies the runner's queue scripts (crates/queue/src/lua/) into lua/, the
// package's own copy: the client runs the very scripts the runner runs, and
// `test/scripts.test.js` checks that the copies are the same bytes.
import { copyFileSync, mkdirSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const from = join(here, '..', '..', '..', 'crates', 'queue', 'src', 'lua');
const to = join(here, '..', 'lua');
mkdirSync(to, { recursive: true });
for (const file of readdirSync(from).filter((f) => f.endsWith('.lua'))) {
  copyFileSync(join(from, file), join(to, file));
}
