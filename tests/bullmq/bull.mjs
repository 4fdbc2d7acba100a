// Real BullMQ, from Node, for the end-to-end tests of BullMQ-backed queues
// (tests/e2e/bullmq.rs). The tests produce with it, read the outcome back
// through BullMQ's own API, and run a BullMQ worker beside the runner.
//
//   node bull.mjs add     <redis-url> <prefix> <queue> <jobs.json>
//        adds the jobs ([{name, data, opts}]) one by one, as apps do;
//        prints their ids as a JSON array
//   node bull.mjs inspect <redis-url> <prefix> <queue> <id>...
//        prints each job as BullMQ sees it, one JSON object per line
//   node bull.mjs flow    <redis-url> <prefix> <queue> <flow.json>
//        adds a flow ({name, data, opts, children: [{name, data, opts,
//        queueName?}]}, the root in <queue>, a child's queue <queue>
//        unless it names one) with BullMQ's FlowProducer; prints the
//        root's id
//   node bull.mjs work    <redis-url> <prefix> <queue> <concurrency> <out-file>
//        runs a BullMQ worker that answers {by: "node"} and appends each job
//        id it runs to <out-file>, until SIGTERM; then closes it and exits

import { appendFileSync, readFileSync } from 'node:fs';
import { FlowProducer, Queue, Worker } from 'bullmq';
import IORedis from 'ioredis';

const [command, url, prefix, name, ...rest] = process.argv.slice(2);
const connect = () => new IORedis(url, { maxRetriesPerRequest: null });

async function add(file) {
  const queue = new Queue(name, { connection: connect(), prefix });
  const ids = [];
  for (const job of JSON.parse(readFileSync(file, 'utf8'))) {
    const added = await queue.add(job.name, job.data, job.opts ?? {});
    ids.push(added.id);
  }
  console.log(JSON.stringify(ids));
  await queue.close();
}

async function flow(file) {
  const producer = new FlowProducer({ connection: connect(), prefix });
  const withQueue = (node) => ({
    ...node,
    queueName: node.queueName ?? name,
    children: (node.children ?? []).map(withQueue),
  });
  const tree = await producer.add(withQueue(JSON.parse(readFileSync(file, 'utf8'))));
  console.log(JSON.stringify(tree.job.id));
  await producer.close();
}

async function inspect(ids) {
  const queue = new Queue(name, { connection: connect(), prefix });
  for (const id of ids) {
    const job = await queue.getJob(id);
    if (!job) {
      console.log(JSON.stringify({ id, state: 'missing' }));
      continue;
    }
    const { logs } = await queue.getJobLogs(id);
    console.log(JSON.stringify({
      id: job.id,
      name: job.name,
      data: job.data,
      state: await job.getState(),
      returnvalue: job.returnvalue,
      failedReason: job.failedReason ?? null,
      attemptsMade: job.attemptsMade,
      attemptsStarted: job.attemptsStarted,
      progress: job.progress,
      logs,
      timestamp: job.timestamp,
      delay: job.delay,
      processedOn: job.processedOn ?? null,
      finishedOn: job.finishedOn ?? null,
      processedBy: job.processedBy ?? null,
      parentKey: job.parentKey ?? null,
      childrenValues: await job.getChildrenValues(),
      failedChildren: await job.getFailedChildrenValues(),
    }));
  }
  await queue.close();
}

async function work(concurrency, out) {
  const worker = new Worker(
    name,
    async (job) => {
      appendFileSync(out, `${job.id}\n`);
      return { by: 'node' };
    },
    { connection: connect(), prefix, concurrency: Number(concurrency) },
  );
  await worker.waitUntilReady();
  console.log('ready');
  process.on('SIGTERM', async () => {
    await worker.close();
    process.exit(0);
  });
}

switch (command) {
  case 'add': await add(rest[0]); process.exit(0); break;
  case 'inspect': await inspect(rest); process.exit(0); break;
  case 'flow': await flow(rest[0]); process.exit(0); break;
  case 'work': await work(rest[0], rest[1]); break;
  default:
    console.error(`unknown command ${command}`);
    process.exit(2);
}
