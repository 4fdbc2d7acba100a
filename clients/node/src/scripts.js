// The runner's queue scripts, as it composes them (`scripts.rs`):
// `common.lua`, then `prelude.lua`, then the script's body; the lean
// `push` is `common.lua` and its body alone. The files are the package's
// copy of the runner's own (`scripts/copy-lua.mjs`). ioredis sends them by
// hash (EVALSHA) and loads them again after a server restart.

import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NAMES, PUSH_NAMES } from './keys.js';

const dir = join(dirname(fileURLToPath(import.meta.url)), '..', 'lua');
const read = (name) => {
  try {
    return readFileSync(join(dir, name), 'utf8');
  } catch (e) {
    throw new Error(`the queue scripts are missing (${join(dir, name)}): run \`npm run build\` in the package`, { cause: e });
  }
};

let loaded;
function scripts() {
  if (!loaded) {
    const common = read('common.lua');
    const prelude = read('prelude.lua');
    const full = (body) => `${common}\n${prelude}\n${read(body)}`;
    loaded = {
      jrEnqueue: { lua: full('enqueue.lua'), numberOfKeys: NAMES.length },
      jrJobs: { lua: full('jobs.lua'), numberOfKeys: NAMES.length },
      jrPush: { lua: `${common}\n${read('push.lua')}`, numberOfKeys: PUSH_NAMES.length },
    };
  }
  return loaded;
}

/** Defines the scripts as commands on an ioredis client or cluster, once. */
export function defineScripts(redis) {
  for (const [name, def] of Object.entries(scripts())) {
    if (typeof redis[name] !== 'function') redis.defineCommand(name, def);
  }
}
