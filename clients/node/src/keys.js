// The Redis key layout of one queue, as the runner's `keys.rs` has it: every
// key under the prefix (`jr` unless the runners' `[redis] prefix` says
// otherwise) and the queue's hash tag, so a queue lives in one Redis
// Cluster slot. `test/scripts.test.js` checks these lists against keys.rs.

/** The fixed keys, in the order every queue script expects them. */
export const NAMES = [
  'meta', 'wait', 'delayed', 'active', 'completed', 'failed', 'specs', 'attempts', 'tokens',
  'created', 'results', 'errors', 'logs', 'progress', 'stalls', 'prios', 'events', 'rl',
  'schedules', 'schedule_next', 'groups', 'gvt', 'grl', 'gscore', 'idle', 'unstarted', 'dead',
  'parents', 'notify', 'waiting_children', 'spawn', 'kids', 'vals', 'fcounts', 'stats', 'runs',
];

/** The keys of the lean one-job enqueue (`push.lua`), in its order. */
export const PUSH_NAMES = [
  'meta', 'wait', 'active', 'specs', 'attempts', 'tokens', 'events', 'gvt', 'idle', 'unstarted', 'delayed',
];

export function queueKeys(prefix, queue) {
  const key = (name) => `${prefix}:{${queue}}:${name}`;
  return {
    all: NAMES.map(key),
    push: PUSH_NAMES.map(key),
    key,
    wake: key('wake'),
    registry: `${prefix}:queues`,
  };
}
