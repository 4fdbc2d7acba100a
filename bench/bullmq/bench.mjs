// The BullMQ side of the benchmark harness (`cargo xtask bench --bullmq`).
//
// Duties: run one measure against the Redis the harness started, the same
// way the harness measures the runner, and print its result as one line of
// JSON. One Node process, one worker, a no-op processor, BullMQ's defaults.
//
//   node bench.mjs <redis-url> enqueue-single <jobs>
//   node bench.mjs <redis-url> enqueue-bulk <jobs>
//   node bench.mjs <redis-url> drain <jobs> <concurrency>
//   node bench.mjs <redis-url> template <jobs> <concurrency>   (template.mjs's handler)
//   node bench.mjs <redis-url> latency <jobs>
//   node bench.mjs <redis-url> delayed <jobs>

import { Queue, Worker } from 'bullmq';
import IORedis from 'ioredis';
import { templateProcessor } from './template.mjs';

const [url, mode, jobsArg, concurrencyArg] = process.argv.slice(2);
const jobs = Number(jobsArg);
// BullMQ 6 takes constructed clients in an ES module; a worker needs its own
// (it blocks on one).
const connect = () => new IORedis(url, { maxRetriesPerRequest: null });
const QUEUE = 'bench';

// Wall clock in microseconds, comparable with the runner's plugins (both
// read the same system clock).
const nowUs = () => Math.round((performance.timeOrigin + performance.now()) * 1000);

function percentile(sorted, p) {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

// Every command Redis ran, those inside scripts included.
async function commandCalls(redis) {
  const info = await redis.info('commandstats');
  let calls = 0;
  for (const line of info.split('\n')) {
    const m = line.match(/^cmdstat_[^:]+:calls=(\d+)/);
    if (m) calls += Number(m[1]);
  }
  return calls;
}

// A `name:number` line of one section of `INFO`.
const infoField = (info, name) => Number(info.match(new RegExp(`^${name}:([0-9.]+)`, 'm'))[1]);

// Seconds of CPU Redis has used, user and system.
async function redisCpu(redis) {
  const info = await redis.info('cpu');
  return infoField(info, 'used_cpu_user') + infoField(info, 'used_cpu_sys');
}

// Bytes Redis has allocated.
async function redisMemory(redis) {
  return infoField(await redis.info('memory'), 'used_memory');
}

async function enqueue(queue, redis, bulk) {
  const memory = await redisMemory(redis);
  const started = performance.now();
  if (bulk) {
    for (let i = 0; i < jobs; i += 1000) {
      const batch = [];
      for (let j = i; j < Math.min(jobs, i + 1000); j++) batch.push({ name: 'noop', data: {} });
      await queue.addBulk(batch);
    }
  } else {
    // 32 producers adding one job at a time, as the harness does.
    let next = 0;
    const producer = async () => {
      while (next < jobs) {
        next++;
        await queue.add('noop', {});
      }
    };
    await Promise.all(Array.from({ length: 32 }, producer));
  }
  const jobsPerS = jobs / ((performance.now() - started) / 1000);
  const grown = (await redisMemory(redis)) - memory;
  return { jobs_per_s: jobsPerS, redis_bytes_per_job: grown / jobs };
}

// The template's jobs: a thousand names, so that cache reads find entries.
const templateJob = (i) => ({ name: 'plugin-template-ts', data: { name: `user-${i % 1000}` } });
const noopJob = () => ({ name: 'noop', data: {} });

// Drains `jobs` jobs made by `makeJob` through `processor`. BullMQ keeps
// every completed job by default, as the runner's queue is set to in the
// harness's drains.
async function drain(queue, redis, processor, makeJob) {
  for (let i = 0; i < jobs; i += 1000) {
    const batch = [];
    for (let j = i; j < Math.min(jobs, i + 1000); j++) batch.push(makeJob(j));
    await queue.addBulk(batch);
  }
  const calls = await commandCalls(redis);
  const cpu = { worker: process.cpuUsage(), redis: await redisCpu(redis) };
  const started = performance.now();
  const worker = new Worker(QUEUE, processor, { connection: connect(), concurrency: Number(concurrencyArg) });
  // Done when the completed set holds them all: read from Redis, not from
  // the worker's events. Each poll is one command, taken off the count
  // below, as the runner's side does with its own.
  let polls = 0;
  for (;;) {
    polls++;
    const done = await redis.zcard(`bull:${QUEUE}:completed`);
    if (done >= jobs) break;
    const failed = await redis.zcard(`bull:${QUEUE}:failed`);
    polls++;
    if (failed > 0) throw new Error(`${failed} job(s) failed`);
    await new Promise((r) => setTimeout(r, 5));
  }
  const seconds = (performance.now() - started) / 1000;
  // Less the polls and the one `INFO` that read the count before.
  const commands = (await commandCalls(redis)) - calls - polls - 1;
  // This process's CPU (µs, user and system): the worker and the polling.
  const used = process.cpuUsage(cpu.worker);
  const redisCpuUs = ((await redisCpu(redis)) - cpu.redis) * 1e6;
  await worker.close(true);
  return {
    jobs_per_s: jobs / seconds,
    commands_per_job: commands / jobs,
    worker_cpu_us: (used.user + used.system) / jobs,
    redis_cpu_us: redisCpuUs / jobs,
  };
}

// Enqueue-to-start latency at light load, or lateness of delayed jobs.
async function timing(queue, delayed) {
  const samples = [];
  const adds = [];
  let finished;
  const all = new Promise((resolve) => (finished = resolve));
  const worker = new Worker(
    QUEUE,
    async (job) => {
      samples.push((nowUs() - job.data.due_us) / 1000);
      if (samples.length === jobs) finished();
    },
    { connection: connect(), concurrency: 10 },
  );
  await worker.waitUntilReady();
  for (let i = 0; i < jobs; i++) {
    const delay = delayed ? 50 + Math.floor(Math.random() * 1450) : 0;
    const sent = nowUs();
    await queue.add('clock', { due_us: sent + delay * 1000 }, delay ? { delay } : {});
    adds.push((nowUs() - sent) / 1000);
    // Light load: one job every 5 ms (delayed jobs all go in at once).
    if (!delayed) await new Promise((r) => setTimeout(r, 5));
  }
  await all;
  await worker.close(true);
  samples.sort((a, b) => a - b);
  adds.sort((a, b) => a - b);
  return {
    p50_ms: percentile(samples, 50),
    p99_ms: percentile(samples, 99),
    max_ms: samples[samples.length - 1],
    add_p50_ms: percentile(adds, 50),
  };
}

const redis = connect();
const queue = new Queue(QUEUE, { connection: redis });
let result;
switch (mode) {
  case 'enqueue-single':
    result = await enqueue(queue, redis, false);
    break;
  case 'enqueue-bulk':
    result = await enqueue(queue, redis, true);
    break;
  case 'drain':
    result = await drain(queue, redis, async () => {}, noopJob);
    break;
  case 'template':
    result = await drain(queue, redis, templateProcessor(connect()), templateJob);
    break;
  case 'latency':
    result = await timing(queue, false);
    break;
  case 'delayed':
    result = await timing(queue, true);
    break;
  default:
    console.error(`unknown mode: ${mode}`);
    process.exit(2);
}
console.log(JSON.stringify(result));
// Closing BullMQ's connections can wait on a blocking command; the result
// is printed, so leave at once.
process.exit(0);
