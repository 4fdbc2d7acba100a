// What the client checks without a Redis: the scripts are the runner's own
// bytes, the key layout is the runner's, and bad input is refused with a
// clear error before anything reaches Redis.
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import Redis from 'ioredis';
import { InvalidJobError, MAX_BULK, Queue } from '../src/index.js';
import { NAMES, PUSH_NAMES } from '../src/keys.js';

const here = dirname(fileURLToPath(import.meta.url));
const runnerLua = join(here, '..', '..', '..', 'crates', 'queue', 'src', 'lua');

test('the packaged scripts are the same bytes as the runner\'s', () => {
  const files = readdirSync(runnerLua).filter((f) => f.endsWith('.lua'));
  assert.ok(files.includes('enqueue.lua') && files.includes('push.lua') && files.includes('jobs.lua'));
  for (const f of files) {
    assert.ok(
      readFileSync(join(here, '..', 'lua', f)).equals(readFileSync(join(runnerLua, f))),
      `lua/${f} differs from the runner's: run npm run build`,
    );
  }
});

test('the key names are the runner\'s, in its order', () => {
  const keysRs = readFileSync(join(runnerLua, '..', 'keys.rs'), 'utf8');
  const list = (name) => {
    const body = keysRs.slice(keysRs.indexOf(`pub const ${name}`)).split('];')[0];
    return [...body.matchAll(/"([a-z_]+)"/g)].map((m) => m[1]);
  };
  assert.deepEqual(NAMES, list('NAMES'));
  assert.deepEqual(PUSH_NAMES, list('PUSH_NAMES'));
});

test('bad input is refused before anything reaches Redis', async () => {
  // A client that never connects: any command would hang or fail.
  const redis = new Redis({ port: 1, lazyConnect: true, enableOfflineQueue: false });
  const q = new Queue('emails', { connection: redis });
  const refused = async (type, payload, opts, words) => {
    await assert.rejects(q.add(type, payload, opts), (e) => {
      assert.ok(e instanceof InvalidJobError, `${e}`);
      assert.match(e.message, words);
      return true;
    });
  };
  await refused('email', {}, { priority: 5000 }, /priority must be from 0 to 4000/);
  await refused('email', {}, { attempts: 0 }, /attempts must be at least 1/);
  await refused('email', {}, { delay: -1 }, /delay/);
  await refused('email', {}, { jobId: 'has space' }, /job id `has space` contains ` `/);
  await refused('email', {}, { jobId: 'a{b}' }, /job id/);
  await refused('email', {}, { backoff: { type: 'linear', delay: 5 } }, /backoff.type `linear`/);
  await refused('email', {}, { backoff: { type: 'exponential', delay: 5, jitter: 2 } }, /jitter/);
  await refused('email', {}, { removeOnComplete: 'yes' }, /removeOnComplete/);
  await refused('email', {}, { atempts: 3 }, /unknown option `atempts`/);
  await refused('has space', {}, {}, /job type/);
  await refused('email', 'x'.repeat(1 << 20), {}, /over the 1048576 byte limit/);
  await assert.rejects(q.addBulk([{ name: 'email', data: {} }, { name: 'email', data: {}, opts: { priority: -1 } }]), /job 1: priority/);
  await assert.rejects(q.addBulk(new Array(MAX_BULK + 1).fill({ name: 'email', data: {} })), /at most 10000/);
  assert.throws(() => new Queue('bad name', { connection: redis }), /queue name/);
  assert.throws(() => new Queue('q', { connection: redis, prefix: 'a{b}' }), /prefix/);
  assert.equal(redis.status, 'wait', 'nothing was sent');
  redis.disconnect();
});
