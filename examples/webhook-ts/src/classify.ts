// What a receiver's answer means for the job, as in plugins/webhook/src/classify.rs:
// 2xx delivered; 408 retry; 429 and 503 retry after their Retry-After (at
// most a day) or with backoff; other 4xx permanent; anything else retry.
// Also the failure a handler throws to end a job.

import type { Failure } from 'jobrunner:plugin/types@0.1.0';

/** componentize-js makes an exception's `payload` the `err` of `handle`'s result. */
export class JobFailure extends Error {
  constructor(readonly payload: Failure) {
    super(payload.tag === 'retry-after' ? payload.val.message : payload.val);
    this.name = `JobFailure(${payload.tag})`;
  }
}

export const MAX_RETRY_AFTER_MS = 24 * 3600 * 1000;

export type Verdict =
  | { kind: 'delivered' }
  | { kind: 'retry' }
  | { kind: 'retry-after'; delayMs: number }
  | { kind: 'permanent' };

/** Seconds, or an HTTP date (a date in the past is no delay). */
export function parseRetryAfter(value: string, nowMs: number): number | undefined {
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - nowMs);
}

export function classify(status: number, retryAfter: string | null, nowMs: number): Verdict {
  if (status >= 200 && status <= 299) return { kind: 'delivered' };
  if (status === 429 || status === 503) {
    const delay = retryAfter === null ? undefined : parseRetryAfter(retryAfter, nowMs);
    return delay === undefined ? { kind: 'retry' } : { kind: 'retry-after', delayMs: Math.min(delay, MAX_RETRY_AFTER_MS) };
  }
  if (status === 408) return { kind: 'retry' };
  if (status >= 400 && status <= 499) return { kind: 'permanent' };
  return { kind: 'retry' };
}
