// The job runner's queue client for Node: put jobs on a runner's queues,
// read them back, wait for them and follow a queue's events, with an API a
// BullMQ user knows (`new Queue(name, { connection })`, `add`, `addBulk`,
// `getJob`, `getJobCounts`, `job.waitUntilFinished`, `QueueEvents`).
//
// It writes Redis only through the runner's own Lua scripts (the package's
// copy, `lua/`), so a job it adds is exactly the job the runner's API or
// Rust client would add. Redis or Redis Cluster, through ioredis.

import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import Redis, { Cluster } from 'ioredis';
import { queueKeys } from './keys.js';
import { InvalidJobError, MAX_BULK, checkJobId, checkQueueName, prepare } from './options.js';
import { defineScripts } from './scripts.js';

export { InvalidJobError, MAX_BULK, MAX_PRIORITY, MAX_ATTEMPTS } from './options.js';

/** An add refused because the queue holds its `max_waiting` jobs. */
export class QueueFullError extends Error {
  constructor(queue, detail) {
    const [waiting, max, adding] = detail.split(' ').map(Number);
    super(`queue \`${queue}\` is full: ${waiting} jobs are waiting, delayed or running, its max_waiting is ${max}, and this would add ${adding}`);
    this.name = 'QueueFullError';
    Object.assign(this, { queue, waiting, max, adding });
  }
}

/** `waitUntilFinished` ran out of time before the job finished. */
export class WaitTimeoutError extends Error {
  constructor(id, state, ms) {
    super(`job ${id} is still ${state} after ${ms} ms`);
    this.name = 'WaitTimeoutError';
    Object.assign(this, { jobId: id, state });
  }
}

/** The longest one blocking read waits; a longer wait is a loop of them. */
const BLOCK_MS = 10000;
// The `jobs` script's fields a job: state, spec, attempts, created, result,
// errors, log, progress, stalls, state score, group, a parent's children's
// counts (the runner's `lua/jobs.lua`).
const JOB_FIELDS = 12;

function connect(connection) {
  if (connection instanceof Redis || connection instanceof Cluster) return { redis: connection, owned: false };
  if (typeof connection === 'string') return { redis: new Redis(connection), owned: true };
  return { redis: new Redis(connection ?? {}), owned: true };
}

function fullOr(queue, e) {
  const m = /QUEUE_FULL ([0-9 ]+)/.exec(e?.message ?? '');
  return m ? new QueueFullError(queue, m[1]) : e;
}

/** One job as the queue holds it. Field names are BullMQ's. */
export class Job {
  constructor(queue, fields) {
    this.queue = queue;
    Object.assign(this, fields);
  }

  /**
   * Waits for the job to finish: resolves with its return value when it
   * completes, rejects with its failure reason when it fails for good (a
   * retry goes on waiting), and with a `WaitTimeoutError` after `ttl` ms
   * (none: as long as it takes). BullMQ's form, `(queueEvents, ttl)`, is
   * taken too; the events are read on a connection of the job's own.
   */
  async waitUntilFinished(ttlOrEvents, ttl) {
    return this.queue._waitFor(this.id, typeof ttlOrEvents === 'number' ? ttlOrEvents : ttl);
  }

  /** `waiting`, `delayed`, `active`, `completed`, `failed`, `waiting_children` (a flow's parent), or `unknown`. */
  async getState() {
    return (await this.queue.getJob(this.id))?.state ?? 'unknown';
  }
}

export class Queue {
  /**
   * @param {string} name the queue's name, as the runners consume it
   * @param {{ connection?: object|string, prefix?: string }} options an
   *   ioredis client or cluster (kept open on `close`), a URL, or ioredis
   *   options; `prefix` is the runners' `[redis] prefix` (default `jr`)
   */
  constructor(name, { connection, prefix = 'jr' } = {}) {
    checkQueueName(name);
    if (!/^[A-Za-z0-9_.:-]{1,64}$/.test(prefix) || prefix.endsWith(':')) {
      throw new InvalidJobError(`prefix \`${prefix}\`: 1 to 64 letters, digits, \`_\`, \`-\`, \`.\` and \`:\`, not ending in \`:\``);
    }
    this.name = name;
    this.prefix = prefix;
    const { redis, owned } = connect(connection);
    this.client = redis;
    this._owned = owned;
    this.keys = queueKeys(prefix, name);
    this._registeredAt = 0;
    this._blockingClients = new Set();
    defineScripts(redis);
  }

  /** Notes the queue in the registry `runner queues` lists, once a minute. */
  async _register() {
    if (Date.now() - this._registeredAt < 60000) return;
    await this.client.sadd(this.keys.registry, this.name);
    this._registeredAt = Date.now();
  }

  /**
   * Adds one job of `type` (the plugin job type that runs it). Options, all
   * optional: `jobId` (an id of yours: adding it again changes nothing),
   * `delay` (ms), `priority` (0 to 4000, **higher first**), `attempts`,
   * `backoff` (`{ type: 'fixed' | 'exponential', delay, maxDelay?, jitter? }`),
   * `timeout` (ms), `removeOnComplete`, `removeOnFail` (true, false, a count,
   * or `{ count, age }` in seconds) and `group` (a fairness and rate-limit
   * group). What is left out takes the queue's policy, then the runner's
   * default. Checked before anything reaches Redis.
   */
  async add(type, payload, opts = {}) {
    const p = prepare(type, payload, opts);
    await this._register();
    if (p.id === undefined && p.plain) {
      // The lean one-job script, as the runner's own single enqueue; it
      // answers 0 when the queue's policy gives jobs a priority or a group.
      const id = randomUUID();
      const r = await this.client.jrPush(...this.keys.push, this.keys.wake, id, p.spec).catch((e) => {
        throw fullOr(this.name, e);
      });
      if (r === 1 || r === 3) return this._made(id, type, payload, opts, true, r === 3 ? 'active' : 'waiting');
    }
    return (await this._enqueue([{ type, payload, opts, p }]))[0];
  }

  /** Adds up to `MAX_BULK` jobs (`[{ name, data, opts }]`) in one call: all or none. */
  async addBulk(jobs) {
    if (!Array.isArray(jobs)) throw new InvalidJobError('addBulk takes an array of { name, data, opts }');
    if (jobs.length > MAX_BULK) {
      throw new InvalidJobError(`${jobs.length} jobs in one addBulk; at most ${MAX_BULK}: split the load into several`);
    }
    const prepared = jobs.map((j, i) => {
      try {
        return { type: j.name, payload: j.data, opts: j.opts ?? {}, p: prepare(j.name, j.data, j.opts ?? {}) };
      } catch (e) {
        if (e instanceof InvalidJobError) e.message = `job ${i}: ${e.message}`;
        throw e;
      }
    });
    if (prepared.length === 0) return [];
    await this._register();
    return this._enqueue(prepared);
  }

  async _enqueue(prepared) {
    const newIds = prepared.every((j) => j.p.id === undefined);
    const short = prepared.every((j) => j.p.plain);
    const args = [this.keys.wake, prepared.length, (newIds ? 1 : 0) + (short ? 2 : 0)];
    const ids = prepared.map((j) => j.p.id ?? randomUUID());
    prepared.forEach((j, i) => {
      args.push(ids[i], j.p.spec);
      if (!short) args.push(j.p.delay, j.p.priority, j.p.group);
    });
    const replies = await this.client.jrEnqueue(...this.keys.all, ...args).catch((e) => {
      throw fullOr(this.name, e);
    });
    return prepared.map((j, i) => {
      const r = replies[i];
      const state = { 1: 'waiting', 2: 'delayed', 3: 'active' }[r] ?? r;
      return this._made(ids[i], j.type, j.payload, j.opts, typeof r === 'number', state);
    });
  }

  _made(id, name, data, opts, created, state) {
    return new Job(this, { id, name, data, opts, created, state, timestamp: Date.now() });
  }

  /** One job as the queue holds it, or null. */
  async getJob(id) {
    checkJobId(id);
    return (await this._records([id]))[0] ?? null;
  }

  async _records(ids) {
    const reply = await this.client.jrJobs(...this.keys.all, ...ids);
    const out = [];
    for (let i = 0; i < ids.length; i++) {
      const f = reply.slice(1 + i * JOB_FIELDS, 1 + (i + 1) * JOB_FIELDS);
      if (!f[0]) continue;
      const spec = JSON.parse(f[1]);
      const result = f[4] ? JSON.parse(f[4]) : null;
      const errors = f[5] ? JSON.parse(f[5]) : [];
      const finished = f[0] === 'completed' || f[0] === 'failed' ? Math.trunc(Number(f[9])) : undefined;
      out.push(
        new Job(this, {
          id: ids[i],
          name: spec.type,
          data: spec.payload,
          opts: spec.opts ?? {},
          state: f[0],
          attemptsMade: Number(f[2] || 0),
          timestamp: spec.created_at,
          progress: f[7] === '' ? 0 : Number(f[7]),
          returnvalue: f[0] === 'completed' ? result : null,
          failedReason: f[0] === 'failed' ? (result?.failed_reason ?? errors.at(-1)?.error ?? '') : errors.at(-1)?.error,
          errors,
          log: f[6] ? JSON.parse(f[6]) : null,
          stalls: Number(f[8] || 0),
          finishedOn: finished,
          delayedUntil: f[0] === 'delayed' ? Math.trunc(Number(f[9])) : undefined,
          group: f[10] || undefined,
          deadLetter: spec.dead_letter,
        }),
      );
    }
    return out;
  }

  /** Jobs per state, and whether the queue is paused. */
  async getJobCounts() {
    const k = this.keys.key;
    const r = await this.client
      .multi()
      .zcard(k('wait'))
      .zcard(k('delayed'))
      .zcard(k('active'))
      .zcard(k('completed'))
      .zcard(k('failed'))
      .zcard(k('waiting_children'))
      .hget(k('meta'), 'paused')
      .exec();
    const [waiting, delayed, active, completed, failed, waitingChildren, paused] = r.map(([e, v]) => {
      if (e) throw e;
      return v;
    });
    return { waiting, delayed, active, completed, failed, waitingChildren, paused: paused === '1' };
  }

  /** A connection of its own for blocking reads, closed with the queue. */
  _blocking() {
    const c = this.client.duplicate();
    this._blockingClients.add(c);
    return c;
  }

  async _waitFor(id, ttl) {
    checkJobId(id);
    const deadline = ttl === undefined ? Infinity : Date.now() + ttl;
    const events = this.keys.key('events');
    const blocking = this._blocking();
    try {
      // The position first, then the job: an end between the two is in the stream.
      const last = await this.client.xrevrange(events, '+', '-', 'COUNT', 1);
      let after = last[0]?.[0] ?? '0-0';
      for (;;) {
        const job = await this.getJob(id);
        if (!job) throw new Error(`job ${id} is not in queue ${this.name} (never added, or removed)`);
        if (job.state === 'completed') return job.returnvalue;
        if (job.state === 'failed') throw Object.assign(new Error(job.failedReason), { job });
        for (;;) {
          const left = deadline - Date.now();
          if (left <= 0) throw new WaitTimeoutError(id, job.state, ttl);
          const reply = await blocking.xread('COUNT', 1000, 'BLOCK', Math.max(1, Math.min(left, BLOCK_MS)), 'STREAMS', events, after);
          if (!reply) continue;
          const entries = reply[0][1];
          after = entries.at(-1)[0];
          const ends = entries.some(([, fields]) => {
            const e = toEvent(fields);
            return ['completed', 'failed', 'removed'].includes(e.event) && e.jobIds.includes(id);
          });
          if (ends) break;
        }
      }
    } finally {
      this._blockingClients.delete(blocking);
      blocking.disconnect();
    }
  }

  /** Ends the queue's connections (not a connection it was given). */
  async close() {
    for (const c of this._blockingClients) c.disconnect();
    if (this._owned) await this.client.quit();
  }
}

/** An events stream entry's fields as an object, with the ids it names. */
function toEvent(fields) {
  const e = {};
  for (let i = 0; i < fields.length; i += 2) e[fields[i]] = fields[i + 1];
  e.jobIds = e.ids ? e.ids.split(' ') : e.id && e.id !== '*' ? [e.id] : [];
  return e;
}

/**
 * A queue's events as they happen, as BullMQ's `QueueEvents`: emits
 * `added`, `completed`, `failed`, `retrying`, `progress`, `stalled`,
 * `removed`, `retried`, `dead_lettered` and the others the runner writes
 * (docs/queue-protocol.md), each once per job with `{ jobId, ...fields }`
 * and the event's id; a batch of completions is one `completed` per job.
 * The runner's events carry no return value: read it with `getJob`.
 */
export class QueueEvents extends EventEmitter {
  /**
   * @param {string} name
   * @param {{ connection?: object|string, prefix?: string, lastEventId?: string }} options
   *   `lastEventId`: start after this event (default `$`: from now on)
   */
  constructor(name, { connection, prefix = 'jr', lastEventId = '$' } = {}) {
    super();
    checkQueueName(name);
    const { redis, owned } = connect(connection);
    // Blocking reads on a connection of their own.
    this.client = owned ? redis : redis.duplicate();
    this.key = queueKeys(prefix, name).key('events');
    this.after = lastEventId;
    this.running = true;
    this.done = this._run();
  }

  async _run() {
    if (this.after === '$') {
      // From now on: the newest event's id, so that no event between two
      // reads is missed (each read goes on from the last id it saw).
      const last = await this.client.xrevrange(this.key, '+', '-', 'COUNT', 1).catch(() => []);
      this.after = last[0]?.[0] ?? '0-0';
      this.emit('ready');
    }
    while (this.running) {
      let reply;
      try {
        reply = await this.client.xread('COUNT', 1000, 'BLOCK', BLOCK_MS, 'STREAMS', this.key, this.after);
      } catch (e) {
        if (!this.running) return;
        this.emit('error', e);
        await new Promise((r) => setTimeout(r, 1000));
        continue;
      }
      if (!reply) continue;
      for (const [id, fields] of reply[0][1]) {
        this.after = id;
        const { event, jobIds, id: _one, ids: _all, count: _count, ...rest } = toEvent(fields);
        for (const jobId of jobIds.length ? jobIds : ['*']) this.emit(event, { jobId, ...rest }, id);
      }
    }
  }

  /** Resolves once the events from now on will be seen (BullMQ's `waitUntilReady`). */
  async waitUntilReady() {
    if (this.after === '$') await new Promise((r) => this.once('ready', r));
  }

  async close() {
    this.running = false;
    this.client.disconnect();
    await this.done.catch(() => {});
  }
}
