// The Node client beside BullMQ's `Queue.add` and `addBulk`, on the same
// Redis (a `redis-server` this script starts on a free loopback port, with
// no persistence, flushed before every run): jobs added per second.
//
// - single: `add` of one job at a time, from one producer (each add
//   awaited before the next: a round trip a job), and from P producers at
//   once, N jobs in all;
// - bulk: `addBulk` of B jobs a call, N jobs in all, one call at a time.
//
// Both sides add the same payload with their default options (BullMQ keeps
// every job; the runner's defaults keep completed jobs for a day, which
// costs an add nothing) and no job id (each side makes its own: BullMQ a
// counter, the client a UUID). The sides alternate, R runs each; the table
// gives each side's median and the spread. Nothing consumes the jobs.
//
// Usage: node bench/add.mjs [--runs R] [--jobs N] [--producers P] [--bulk B]

import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { cpus, totalmem } from 'node:os';
import { Queue as BullQueue } from 'bullmq';
import Redis from 'ioredis';
import { Queue } from '../src/index.js';

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const RUNS = arg('runs', 5);
const JOBS = arg('jobs', 20000);
const PRODUCERS = arg('producers', 32);
const BULK = arg('bulk', 1000);
const PAYLOAD = { to: 'ana@example.com', template: 'booking_confirmation', data: { booking_id: 'B-1042', vendor: 'Lumen Studio' } };

const freePort = () =>
  new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

async function startRedis() {
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: 'ignore',
  });
  const redis = new Redis({ port, lazyConnect: true, maxRetriesPerRequest: null });
  for (let i = 0; i < 100; i++) {
    try {
      await redis.connect();
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return { port, redis, stop: () => child.kill() };
}

async function timed(fn) {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

async function single(add, producers) {
  let next = 0;
  const producer = async () => {
    while (next < JOBS) {
      next++;
      await add();
    }
  };
  return JOBS / (await timed(() => Promise.all(Array.from({ length: producers }, producer))));
}

async function bulk(addBulk) {
  const batch = Array.from({ length: BULK }, () => PAYLOAD);
  return JOBS / (await timed(async () => {
    for (let done = 0; done < JOBS; done += BULK) await addBulk(batch);
  }));
}

const sides = {
  client: (connection) => {
    const q = new Queue('bench', { connection });
    return {
      one: () => single(() => q.add('email', PAYLOAD), 1),
      single: () => single(() => q.add('email', PAYLOAD), PRODUCERS),
      bulk: () => bulk((b) => q.addBulk(b.map((data) => ({ name: 'email', data })))),
      close: () => q.close(),
    };
  },
  bullmq: (connection) => {
    const q = new BullQueue('bench', { connection });
    return {
      one: () => single(() => q.add('email', PAYLOAD), 1),
      single: () => single(() => q.add('email', PAYLOAD), PRODUCERS),
      bulk: () => bulk((b) => q.addBulk(b.map((data) => ({ name: 'email', data })))),
      close: () => q.close(),
    };
  },
};

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const k = (n) => `${(n / 1000).toFixed(1)}k`;

const { port, redis, stop } = await startRedis();
const MODES = ['one', 'single', 'bulk'];
const results = Object.fromEntries(['client', 'bullmq'].map((s) => [s, Object.fromEntries(MODES.map((m) => [m, []]))]));
try {
  for (const mode of MODES) {
    // A warm-up run of each side, not counted (script loading, JIT).
    for (let run = -1; run < RUNS; run++) {
      for (const side of run % 2 ? ['client', 'bullmq'] : ['bullmq', 'client']) {
        await redis.flushall();
        const connection = new Redis({ port, maxRetriesPerRequest: null });
        const s = sides[side](connection);
        const rate = await s[mode]();
        await s.close();
        connection.disconnect();
        if (run >= 0) results[side][mode].push(rate);
      }
    }
  }
} finally {
  redis.disconnect();
  stop();
}

const info = `${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
console.log(`Machine: ${info}; ${JOBS} jobs a run, ${RUNS} runs a side, alternating.`);
console.log('');
console.log('| jobs/s | client (median, min to max) | BullMQ Queue (median, min to max) | ratio |');
console.log('|---|---|---|---|');
for (const [mode, label] of [['one', 'add, 1 producer'], ['single', `add, ${PRODUCERS} producers`], ['bulk', `addBulk of ${BULK}`]]) {
  const c = results.client[mode];
  const b = results.bullmq[mode];
  console.log(
    `| ${label} | **${k(median(c))}** (${k(Math.min(...c))} to ${k(Math.max(...c))}) | ${k(median(b))} (${k(Math.min(...b))} to ${k(Math.max(...b))}) | ${(median(c) / median(b)).toFixed(1)}× |`,
  );
}
