// A job-runner plugin in TypeScript: handles jobs of type `plugin-template-ts`.
//
// Build:  npm install && npm run build
// Check:  runner plugin check dist/plugin-template-ts.wasm
// Run:    runner exec dist/plugin-template-ts.wasm --type plugin-template-ts --payload '{"name": "Ada"}'
//
// It greets `name` and shows each capability of the contract: the job's log
// and progress, the cache, config, email, follow-up jobs and `fetch`.

import * as cache from 'jobrunner:plugin/cache@0.2.0';
import * as config from 'jobrunner:plugin/config@0.2.0';
import * as email from 'jobrunner:plugin/email@0.2.0';
import * as log from 'jobrunner:plugin/log@0.2.0';
import * as queue from 'jobrunner:plugin/queue@0.2.0';
import type { Failure, Job, PluginInfo } from 'jobrunner:plugin/types@0.2.0';
import { JobFailure, parsePayload } from './failure.js';

const NAME = 'plugin-template-ts';
const VERSION = '0.1.0';

/** The payload this plugin expects. */
interface Payload {
  /** Who to greet. */
  name: string;
  /** Also send the greeting to this address. */
  email?: string;
  /** Also POST the greeting to this URL (its host must be allowed). */
  notify_url?: string;
  /** Greet again this many milliseconds later, as a follow-up job. */
  again_in_ms?: number;
}

// Made once, not per job: componentize-js runs the module's top level when
// it snapshots the engine at build time, and in an interpreted engine every
// allocation a job skips is time saved.
const KNOWN_FIELDS = new Set(['name', 'email', 'notify_url', 'again_in_ms']);
const utf8Decoder = new TextDecoder();
const utf8Encoder = new TextEncoder();

function checkPayload(value: unknown): Payload {
  const p = value as Partial<Payload>;
  if (typeof p !== 'object' || p === null || typeof p.name !== 'string' || p.name.trim() === '') {
    throw new JobFailure({ tag: 'permanent', val: 'invalid payload: `name` must be a non-empty string' });
  }
  const unknown = Object.keys(p).filter((k) => !KNOWN_FIELDS.has(k));
  // Unknown fields are refused, so a typo in a producer fails loudly.
  if (unknown.length > 0) {
    throw new JobFailure({ tag: 'permanent', val: `invalid payload: unknown field \`${unknown[0]}\`` });
  }
  const again = p.again_in_ms;
  if (again !== undefined && (typeof again !== 'number' || !Number.isInteger(again) || again < 0)) {
    throw new JobFailure({ tag: 'permanent', val: 'invalid payload: `again_in_ms` must be a whole number of milliseconds' });
  }
  return p as Payload;
}

export const handler = {
  describe(): PluginInfo {
    return { name: NAME, version: VERSION, jobTypes: [NAME] };
  },

  // `handle` may be async: componentize-js runs the event loop until the
  // promise settles. A thrown `JobFailure` becomes the job's failure; any
  // other exception is a fault, which the runner retries with backoff.
  async handle(job: Job): Promise<string | undefined> {
    const p = checkPayload(parsePayload(job.payload));

    // Config values come from the runner's config: [plugins.NAME.config].
    const greeting = config.get('greeting') ?? 'Hello';
    const message = `${greeting}, ${p.name}!`;
    log.write('info', `attempt ${job.attempt} of ${job.maxAttempts}: ${message}`);

    // The cache is this plugin's own; entries expire and can be dropped by tag.
    const key = `greeted:${p.name}`;
    const before = cache.get(key);
    const times = (before ? Number(utf8Decoder.decode(before)) : 0) + 1;
    cache.set(key, utf8Encoder.encode(String(times)), 86_400_000n, ['greetings']);
    log.progress(25);

    if (p.email) {
      try {
        const id = email.send({
          to: [p.email],
          cc: [],
          bcc: [],
          subject: message,
          text: `${message}\n`,
          headers: [],
        });
        log.write('info', `emailed ${p.email}: ${id}`);
      } catch (e) {
        // A failed import call throws an error whose `payload` is the WIT error.
        const err = (e as { payload?: email.SendError }).payload;
        if (err?.tag === 'invalid') throw new JobFailure({ tag: 'permanent', val: `email: ${err.val}` });
        throw new JobFailure({ tag: 'retry', val: `email: ${err?.val ?? String(e)}` });
      }
    }
    log.progress(50);

    if (p.notify_url) {
      const response = await fetch(p.notify_url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ message }),
      });
      if (!response.ok) {
        const failure: Failure =
          response.status >= 500 || response.status === 429
            ? { tag: 'retry', val: `notify answered ${response.status}` }
            : { tag: 'permanent', val: `notify answered ${response.status}` };
        throw new JobFailure(failure);
      }
    }
    log.progress(75);

    if (p.again_in_ms !== undefined) {
      // Enqueued only if this attempt succeeds, so a retry does not fan out twice.
      const id = queue.enqueue(job.queue, NAME, JSON.stringify({ name: p.name }), {
        delayMs: BigInt(p.again_in_ms),
        jobId: `${job.id}-again`,
      });
      log.write('info', `follow-up ${id} in ${p.again_in_ms} ms`);
    }
    log.progress(100);
    return JSON.stringify({ message, times });
  },
};
