// How a TypeScript handler ends a job with a failure, and reads its payload.
//
// componentize-js turns an exception thrown from an export whose WIT result
// has an error type into that `err`: it uses the exception's `payload`
// property when it has one. `JobFailure` carries the contract's `failure`
// there, and is still an `Error`, so it prints with a message and a stack.

import type { Failure } from 'jobrunner:plugin/types@0.2.0';

export class JobFailure extends Error {
  constructor(readonly payload: Failure) {
    super(payload.tag === 'retry-after' ? payload.val.message : payload.val);
    this.name = `JobFailure(${payload.tag})`;
  }
}

/** Parses the payload; JSON that does not parse never will, so it fails permanently. */
export function parsePayload(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new JobFailure({ tag: 'permanent', val: `invalid payload: ${(e as Error).message}` });
  }
}
