// The webhook plugin (job type `webhook`) in TypeScript: the same behaviour
// as the Rust plugin in plugins/webhook, which its README documents.
//
// 1. builds the event body `{"created_at", "data", "id", "type"}`, with keys
//    sorted and no spaces, byte for byte what the Rust plugin sends;
// 2. signs `"{timestamp}.{body}"` with HMAC-SHA256 (WebCrypto) using the
//    endpoint's secret, and sends the timestamp, the signature and the job
//    id as an idempotency key;
// 3. classifies the answer (`classify.ts`).

import * as config from 'jobrunner:plugin/config@0.1.0';
import * as log from 'jobrunner:plugin/log@0.1.0';
import type { Job, PluginInfo } from 'jobrunner:plugin/types@0.1.0';
import { canonicalJson, checkPayload } from './payload.js';
import { classify, JobFailure } from './classify.js';

const VERSION = '0.1.0';

async function sign(secret: string, timestamp: number, body: string): Promise<string> {
  const utf8 = new TextEncoder();
  const key = await crypto.subtle.importKey('raw', utf8.encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, [
    'sign',
  ]);
  const mac = new Uint8Array(await crypto.subtle.sign('HMAC', key, utf8.encode(`${timestamp}.${body}`)));
  return `v1=${Array.from(mac, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}

/** Sends the request, turning fetch's rejections into the job's failures. */
async function send(url: string, init: RequestInit, timeoutMs: number): Promise<Response> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new JobFailure({ tag: 'permanent', val: `invalid URL: ${url}` });
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new JobFailure({ tag: 'permanent', val: `invalid URL: unsupported scheme \`${parsed.protocol.slice(0, -1)}\`` });
  }
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  try {
    return await fetch(url, { ...init, signal: abort.signal });
  } catch (e) {
    if (abort.signal.aborted) throw new JobFailure({ tag: 'retry', val: `timed out: no answer in ${timeoutMs} ms` });
    // Refused, reset, DNS: another attempt may pass. `fetch` rejects every
    // network failure with the same TypeError, so a host that is not on the
    // plugin's allow-list is retried too (the runner's log of the job says
    // `http denied`), where the Rust plugin gives up at once.
    throw new JobFailure({ tag: 'retry', val: `transport error: ${String((e as Error).message ?? e)}` });
  } finally {
    clearTimeout(timer);
  }
}

export const handler = {
  describe(): PluginInfo {
    return { name: 'webhook', version: VERSION, jobTypes: ['webhook'] };
  },

  async handle(job: Job): Promise<string | undefined> {
    const p = checkPayload(job.payload);
    const secretName = p.endpoint !== undefined ? `endpoint.${p.endpoint}` : 'signing_secret';
    const secret = config.secret(secretName);
    if (secret === undefined) {
      throw new JobFailure({
        tag: 'permanent',
        val: `no signing secret: set the secret \`${secretName}\` for this plugin`,
      });
    }
    const body = canonicalJson({ id: job.id, type: p.event, created_at: Number(job.enqueuedAt), data: p.data });
    const timestamp = Math.floor(Date.now() / 1000);
    const headers = new Headers({
      'content-type': 'application/json',
      'user-agent': `jobrunner-webhook/${VERSION}`,
      'x-webhook-timestamp': String(timestamp),
      'x-webhook-signature': await sign(secret, timestamp, body),
      'idempotency-key': job.id,
    });
    for (const [name, value] of Object.entries(p.headers)) headers.append(name, value);
    log.write('info', `POST ${p.url} (attempt ${job.attempt}/${job.maxAttempts})`);

    const response = await send(p.url, { method: 'POST', headers, body }, p.timeout_ms);
    log.write('info', `answered ${response.status}`);
    const text = await response.text();
    const verdict = classify(response.status, response.headers.get('retry-after'), Date.now());
    const described = `receiver answered ${response.status}: ${Array.from(text).slice(0, 200).join('').trim()}`;
    switch (verdict.kind) {
      case 'delivered':
        return canonicalJson({ status: response.status, attempt: job.attempt });
      case 'retry':
        throw new JobFailure({ tag: 'retry', val: described });
      case 'retry-after':
        throw new JobFailure({ tag: 'retry-after', val: { delayMs: BigInt(verdict.delayMs), message: described } });
      case 'permanent':
        throw new JobFailure({ tag: 'permanent', val: described });
    }
  },
};
