// The client against a real Redis that a real `runner serve` consumes, with
// the test fixture plugin `hostile` (its `echo`, `flaky` and `sleep` job
// types). `tests/e2e/clients.rs` starts both and runs these with
// JR_REDIS_URL, JR_QUEUE (consumed) and JR_CLUSTER (a Redis Cluster's
// nodes, comma-separated); without them they are skipped.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import Redis, { Cluster } from 'ioredis';
import { Queue, QueueEvents, WaitTimeoutError } from '../src/index.js';

const url = process.env.JR_REDIS_URL;
const skip = url ? false : 'needs JR_REDIS_URL: run through tests/e2e/clients.rs, which starts Redis and runner serve';
const name = process.env.JR_QUEUE ?? 'clients';
const redis = url ? new Redis(url) : null;
const queue = url ? new Queue(name, { connection: redis }) : null;
after(async () => {
  await queue?.close();
  redis?.disconnect();
});

test('a job runs and its result is read back', { skip }, async () => {
  const job = await queue.add('echo', { hello: 'runner' });
  assert.equal(job.created, true);
  assert.deepEqual(await job.waitUntilFinished(30000), { hello: 'runner' });
  const done = await queue.getJob(job.id);
  assert.equal(done.state, 'completed');
  assert.deepEqual(done.returnvalue, { hello: 'runner' });
  assert.equal(done.attemptsMade, 1);
});

test('a failure is read back, after the attempts given', { skip }, async () => {
  const job = await queue.add('flaky', { fail_percent: 100 }, { attempts: 2, backoff: { type: 'fixed', delay: 10 } });
  await assert.rejects(job.waitUntilFinished(30000), /flaky failure on attempt 2/);
  const failed = await queue.getJob(job.id);
  assert.equal(failed.state, 'failed');
  assert.equal(failed.attemptsMade, 2);
  assert.deepEqual(failed.opts, { attempts: 2, backoff: { type: 'fixed', delay_ms: 10 } });
  assert.equal(failed.errors.length, 2);
});

test('options arrive as given: delay, priority, group, timeout, retention', { skip }, async () => {
  const before = Date.now();
  const job = await queue.add('echo', { n: 1 }, {
    delay: 300, priority: 7, group: 'vendor-1', timeout: 5000, removeOnComplete: { count: 50, age: 3600 },
  });
  assert.equal(job.state, 'delayed');
  const delayed = await queue.getJob(job.id);
  assert.equal(delayed.state, 'delayed');
  assert.ok(delayed.delayedUntil >= before + 300);
  assert.equal(delayed.group, 'vendor-1');
  assert.deepEqual(delayed.opts, {
    delay_ms: 300, priority: 7, timeout_ms: 5000, keep_completed: { count: 50, age_ms: 3600000 }, group: 'vendor-1',
  });
  await job.waitUntilFinished(30000);
  const done = await queue.getJob(job.id);
  assert.ok(done.finishedOn >= before + 300, 'ran no sooner than its delay');
});

test('an id of yours de-duplicates', { skip }, async () => {
  const first = await queue.add('echo', { v: 1 }, { jobId: 'order-42' });
  const again = await queue.add('echo', { v: 2 }, { jobId: 'order-42' });
  assert.equal(first.created, true);
  assert.equal(again.created, false);
  assert.deepEqual(await first.waitUntilFinished(30000), { v: 1 });
  assert.deepEqual((await queue.getJob('order-42')).data, { v: 1 });
});

test('addBulk puts a thousand jobs on in one call, and the events follow them', { skip }, async () => {
  const events = new QueueEvents(name, { connection: redis });
  await events.waitUntilReady();
  const completed = new Set();
  events.on('completed', ({ jobId }) => completed.add(jobId));
  const jobs = await queue.addBulk(Array.from({ length: 1000 }, (_, i) => ({ name: 'echo', data: { i } })));
  assert.equal(new Set(jobs.map((j) => j.id)).size, 1000);
  const deadline = Date.now() + 60000;
  while (!jobs.every((j) => completed.has(j.id))) {
    assert.ok(Date.now() < deadline, `${completed.size} of 1000 completed`);
    await new Promise((r) => setTimeout(r, 20));
  }
  await events.close();
  const counts = await queue.getJobCounts();
  assert.equal(counts.paused, false);
  assert.ok(counts.completed >= 1000);
});

test('a wait that runs out says where the job stands', { skip }, async () => {
  const job = await queue.add('sleep', { ms: 2000 });
  await assert.rejects(job.waitUntilFinished(200), (e) => e instanceof WaitTimeoutError && /still (waiting|active)/.test(e.message));
});

test('on a Redis Cluster, a queue lives in one slot and reads back', { skip: process.env.JR_CLUSTER ? false : skip || 'needs JR_CLUSTER' }, async () => {
  const nodes = process.env.JR_CLUSTER.split(',').map((u) => {
    const { hostname, port } = new URL(u);
    return { host: hostname, port: Number(port) };
  });
  const cluster = new Cluster(nodes);
  const q = new Queue('cluster-emails', { connection: cluster });
  const one = await q.add('email', { to: 'ana@example.com' }, { jobId: 'c-1', priority: 3 });
  const bulk = await q.addBulk([{ name: 'email', data: { i: 1 } }, { name: 'email', data: { i: 2 }, opts: { delay: 60000 } }]);
  assert.deepEqual([one.created, ...bulk.map((j) => j.state)], [true, 'waiting', 'delayed']);
  assert.deepEqual((await q.getJob('c-1')).opts, { priority: 3 });
  assert.deepEqual(await q.getJobCounts(), { waiting: 2, delayed: 1, active: 0, completed: 0, failed: 0, waitingChildren: 0, paused: false });
  await q.close();
  cluster.disconnect();
});
