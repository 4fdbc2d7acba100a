// A job's options, checked before anything reaches Redis (as the runner's
// `options.rs` and `jobrunner-job` check them), and written as the runner's
// spec stores them: only what the producer set, so that the queue's policy
// (`[queues.NAME]` in the runners' config) fills the rest.
//
// The names are BullMQ's where BullMQ has the option (`jobId`, `delay`,
// `attempts`, `backoff`, `removeOnComplete`, `removeOnFail`), with one
// difference a BullMQ user must know: `priority` runs **higher first**
// (0 to 4000), where BullMQ's 1 runs first.

export const MAX_PRIORITY = 4000;
export const MAX_ATTEMPTS = 1000;
export const MAX_DELAY_MS = 366 * 24 * 3600 * 1000;
export const MAX_PAYLOAD_BYTES = 1 << 20;
/** The most jobs one `addBulk` takes: it is one script call, whole or not at all. */
export const MAX_BULK = 10000;

/** A producer's mistake, found before anything reached Redis. */
export class InvalidJobError extends Error {
  constructor(message) {
    super(message);
    this.name = 'InvalidJobError';
  }
}

function checkName(what, name, max, ok) {
  if (typeof name !== 'string' || name.length === 0) throw new InvalidJobError(`${what} is empty`);
  if (Buffer.byteLength(name) > max) throw new InvalidJobError(`${what} is longer than ${max} characters`);
  for (const c of name) {
    if (!ok(c)) throw new InvalidJobError(`${what} \`${name}\` contains \`${c}\`, which is not allowed`);
  }
}

const alnum = (c) => /^[A-Za-z0-9]$/.test(c);
export const checkQueueName = (n) => checkName('queue name', n, 128, (c) => alnum(c) || '-_.:'.includes(c));
export const checkJobType = (n) => checkName('job type', n, 128, (c) => alnum(c) || '-_.:/'.includes(c));
const graphic = (c) => c >= '!' && c <= '~';
export const checkJobId = (n) => checkName('job id', n, 256, (c) => graphic(c) && c !== '{' && c !== '}');
const checkGroup = (n) => checkName('group', n, 256, (c) => graphic(c) && c !== '{' && c !== '}');

const isWhole = (n) => Number.isInteger(n) && n >= 0;

function keep(name, v) {
  // BullMQ: `true` removes at once, `false` keeps all, a number keeps that
  // many, `{ count, age }` (age in seconds) bounds both.
  if (v === true) return { count: 0, age_ms: null };
  if (v === false) return { count: null, age_ms: null };
  if (isWhole(v)) return { count: v, age_ms: null };
  if (v && typeof v === 'object') {
    const unknown = Object.keys(v).filter((k) => k !== 'count' && k !== 'age');
    if (unknown.length) throw new InvalidJobError(`${name}: unknown key \`${unknown[0]}\` (count, age)`);
    if (v.count !== undefined && !isWhole(v.count)) throw new InvalidJobError(`${name}.count must be a whole number`);
    if (v.age !== undefined && !isWhole(v.age)) throw new InvalidJobError(`${name}.age must be whole seconds`);
    return { count: v.count ?? null, age_ms: v.age === undefined ? null : v.age * 1000 };
  }
  throw new InvalidJobError(`${name} must be true, false, a count or { count, age }`);
}

function backoff(b) {
  if (isWhole(b)) return { type: 'fixed', delay_ms: b };
  if (!b || typeof b !== 'object') throw new InvalidJobError('backoff must be a delay in ms or { type, delay }');
  const unknown = Object.keys(b).filter((k) => !['type', 'delay', 'maxDelay', 'jitter'].includes(k));
  if (unknown.length) throw new InvalidJobError(`backoff: unknown key \`${unknown[0]}\` (type, delay, maxDelay, jitter)`);
  if (b.type === 'none') return { type: 'none' };
  if (!isWhole(b.delay)) throw new InvalidJobError('backoff.delay must be whole milliseconds');
  if (b.type === 'fixed') {
    if (b.maxDelay !== undefined || b.jitter !== undefined) {
      throw new InvalidJobError('backoff: a fixed backoff takes a delay only');
    }
    return { type: 'fixed', delay_ms: b.delay };
  }
  if (b.type === 'exponential') {
    const jitter = b.jitter ?? 0;
    if (typeof jitter !== 'number' || jitter < 0 || jitter > 1) throw new InvalidJobError('backoff.jitter must be from 0 to 1');
    if (b.maxDelay !== undefined && !isWhole(b.maxDelay)) throw new InvalidJobError('backoff.maxDelay must be whole milliseconds');
    return { type: 'exponential', delay_ms: b.delay, max_delay_ms: b.maxDelay ?? 0, jitter };
  }
  throw new InvalidJobError(`backoff.type \`${b.type}\`: use fixed, exponential or none`);
}

const KNOWN = ['jobId', 'delay', 'priority', 'attempts', 'backoff', 'timeout', 'removeOnComplete', 'removeOnFail', 'group'];

/**
 * Checks a job and returns `{ id, spec, delay, priority, group }`: the
 * spec as JSON, and the arguments the enqueue script takes (`''` where the
 * producer set nothing, for the queue's policy to fill).
 */
export function prepare(type, payload, opts = {}) {
  checkJobType(type);
  if (opts === null || typeof opts !== 'object') throw new InvalidJobError('options must be an object');
  const unknown = Object.keys(opts).filter((k) => !KNOWN.includes(k));
  if (unknown.length) throw new InvalidJobError(`unknown option \`${unknown[0]}\` (${KNOWN.join(', ')})`);
  const data = JSON.stringify(payload === undefined ? {} : payload);
  if (data === undefined) throw new InvalidJobError('the payload is not JSON');
  if (Buffer.byteLength(data) > MAX_PAYLOAD_BYTES) {
    throw new InvalidJobError(`payload of ${Buffer.byteLength(data)} bytes is over the ${MAX_PAYLOAD_BYTES} byte limit`);
  }
  const o = {};
  if (opts.jobId !== undefined) checkJobId(opts.jobId);
  if (opts.delay !== undefined) {
    if (!isWhole(opts.delay)) throw new InvalidJobError('delay must be whole milliseconds');
    if (opts.delay > MAX_DELAY_MS) throw new InvalidJobError('delay must be at most a year');
    if (opts.delay > 0) o.delay_ms = opts.delay;
  }
  if (opts.priority !== undefined) {
    if (!isWhole(opts.priority) || opts.priority > MAX_PRIORITY) {
      throw new InvalidJobError(`priority must be from 0 to ${MAX_PRIORITY} (higher runs first)`);
    }
    o.priority = opts.priority;
  }
  if (opts.attempts !== undefined) {
    if (!Number.isInteger(opts.attempts) || opts.attempts < 1) throw new InvalidJobError('attempts must be at least 1');
    if (opts.attempts > MAX_ATTEMPTS) throw new InvalidJobError(`attempts must be at most ${MAX_ATTEMPTS}`);
    o.attempts = opts.attempts;
  }
  if (opts.backoff !== undefined) o.backoff = backoff(opts.backoff);
  if (opts.timeout !== undefined) {
    if (!Number.isInteger(opts.timeout) || opts.timeout < 1) throw new InvalidJobError('timeout must be more than zero milliseconds');
    o.timeout_ms = opts.timeout;
  }
  if (opts.removeOnComplete !== undefined) o.keep_completed = keep('removeOnComplete', opts.removeOnComplete);
  if (opts.removeOnFail !== undefined) o.keep_failed = keep('removeOnFail', opts.removeOnFail);
  let group = '';
  if (opts.group !== undefined) {
    group = typeof opts.group === 'object' && opts.group !== null ? opts.group.id : opts.group;
    checkGroup(group);
    o.group = group;
  }
  const spec = `{"type":${JSON.stringify(type)},"payload":${data},"opts":${JSON.stringify(o)},"created_at":${Date.now()}}`;
  return {
    id: opts.jobId,
    spec,
    delay: o.delay_ms ?? 0,
    priority: o.priority === undefined ? '' : String(o.priority),
    group,
    plain: o.delay_ms === undefined && o.priority === undefined && group === '',
  };
}
