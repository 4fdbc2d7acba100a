// The TypeScript plugin template's handler (examples/plugin-template-ts/src/index.ts),
// written as a Node BullMQ processor would be: the same checks, config, log,
// cache read and write, four progress reports and JSON out, each through what
// a BullMQ user has for it. The harness drains jobs through it beside the
// runner draining the same jobs through the compiled template.
//
// What each step is on this side:
// - config: an object in the process (the runner's comes from its config);
// - log: `job.log`, BullMQ's per-job log, one Redis call a line (the runner
//   keeps a job's log lines and writes them with its record);
// - cache: `GET`, then `SET ... PX` on the same Redis under the plugin's
//   namespace (the runner's cache write is a script that also keeps the
//   namespace's byte and key budget and a tag index: more work on its side);
// - progress: `job.updateProgress`, one Redis call and event each (the
//   runner writes progress live only once a job has run 250 ms, at most
//   four times a second after; a shorter job's rides on its outcome);
// - output: the returned object, which BullMQ stores as the return value.

const NAME = 'plugin-template-ts';
const config = { greeting: 'Hello' };
const known = new Set(['name', 'email', 'notify_url', 'again_in_ms']);

class PermanentFailure extends Error {}

function checkPayload(p) {
  if (typeof p !== 'object' || p === null || typeof p.name !== 'string' || p.name.trim() === '') {
    throw new PermanentFailure('invalid payload: `name` must be a non-empty string');
  }
  const unknown = Object.keys(p).filter((k) => !known.has(k));
  if (unknown.length > 0) throw new PermanentFailure(`invalid payload: unknown field \`${unknown[0]}\``);
  const again = p.again_in_ms;
  if (again !== undefined && (typeof again !== 'number' || !Number.isInteger(again) || again < 0)) {
    throw new PermanentFailure('invalid payload: `again_in_ms` must be a whole number of milliseconds');
  }
  return p;
}

/** The processor, given a Redis client for the cache. */
export function templateProcessor(redis) {
  return async (job) => {
    const p = checkPayload(job.data);
    const greeting = config.greeting ?? 'Hello';
    const message = `${greeting}, ${p.name}!`;
    await job.log(`attempt ${job.attemptsMade + 1} of ${job.opts.attempts ?? 1}: ${message}`);

    const key = `cache:${NAME}:greeted:${p.name}`;
    const before = await redis.get(key);
    const times = (before ? Number(before) : 0) + 1;
    await redis.set(key, String(times), 'PX', 86_400_000);
    await job.updateProgress(25);
    // The template's email, HTTP and follow-up steps run only when the
    // payload asks for them; the benchmark's payloads do not.
    await job.updateProgress(50);
    await job.updateProgress(75);
    await job.updateProgress(100);
    return { message, times };
  };
}
