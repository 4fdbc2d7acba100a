// The webhook's payload, checked as strictly as the Rust plugin's
// (`deny_unknown_fields`), and the canonical JSON the body is written in.

import { JobFailure } from './classify.js';

export interface Payload {
  url: string;
  event: string;
  data: unknown;
  /** Selects the secret `endpoint.NAME`; without it, `signing_secret`. */
  endpoint?: string;
  headers: Record<string, string>;
  timeout_ms: number;
}

const FIELDS = new Set(['url', 'event', 'data', 'endpoint', 'headers', 'timeout_ms']);

function invalid(why: string): JobFailure {
  return new JobFailure({ tag: 'permanent', val: `invalid payload: ${why}` });
}

export function checkPayload(text: string): Payload {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw invalid((e as Error).message);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid('expected an object');
  const p = value as Record<string, unknown>;
  for (const key of Object.keys(p)) if (!FIELDS.has(key)) throw invalid(`unknown field \`${key}\``);
  for (const key of ['url', 'event']) {
    if (p[key] === undefined) throw invalid(`missing field \`${key}\``);
    if (typeof p[key] !== 'string') throw invalid(`\`${key}\` must be a string`);
  }
  if (p.endpoint !== undefined && p.endpoint !== null && typeof p.endpoint !== 'string') {
    throw invalid('`endpoint` must be a string');
  }
  const headers = p.headers ?? {};
  if (typeof headers !== 'object' || Array.isArray(headers) || Object.values(headers).some((v) => typeof v !== 'string')) {
    throw invalid('`headers` must be an object of strings');
  }
  const timeout = p.timeout_ms ?? 10_000;
  if (typeof timeout !== 'number' || !Number.isInteger(timeout) || timeout < 0) {
    throw invalid('`timeout_ms` must be a whole number of milliseconds');
  }
  return {
    url: p.url as string,
    event: p.event as string,
    data: p.data ?? null,
    endpoint: (p.endpoint ?? undefined) as string | undefined,
    headers: headers as Record<string, string>,
    timeout_ms: timeout,
  };
}

/**
 * JSON with object keys sorted and no whitespace: what serde_json writes for
 * the Rust plugin, so receivers see the same bytes from either language.
 */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`);
    return `{${entries.join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}
