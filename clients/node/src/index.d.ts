// Types of the job runner's queue client (src/index.js).
import { EventEmitter } from 'node:events';
import type { Cluster, Redis, RedisOptions } from 'ioredis';

export declare const MAX_BULK: number;
export declare const MAX_PRIORITY: number;
export declare const MAX_ATTEMPTS: number;

/** A producer's mistake, found before anything reached Redis. */
export declare class InvalidJobError extends Error {}

/** An add refused because the queue holds its `max_waiting` jobs. */
export declare class QueueFullError extends Error {
  queue: string;
  waiting: number;
  max: number;
  adding: number;
}

/** `waitUntilFinished` ran out of time before the job finished. */
export declare class WaitTimeoutError extends Error {
  jobId: string;
  state: JobState;
}

export type JobState = 'waiting' | 'delayed' | 'active' | 'completed' | 'failed' | 'waiting_children';

/** BullMQ's retention: true removes at once, false keeps all, a count, or both bounds (age in seconds). */
export type KeepJobs = boolean | number | { count?: number; age?: number };

export interface JobsOptions {
  /** An id of yours: adding it again changes nothing. */
  jobId?: string;
  /** Run no sooner than this many ms from now. */
  delay?: number;
  /** 0 to 4000, **higher first** (BullMQ's 1 is first). */
  priority?: number;
  attempts?: number;
  backoff?: number | { type: 'fixed' | 'exponential' | 'none'; delay?: number; maxDelay?: number; jitter?: number };
  /** How long one attempt may run, in ms (never past the plugin's own timeout). */
  timeout?: number;
  removeOnComplete?: KeepJobs;
  removeOnFail?: KeepJobs;
  /** A fairness and rate-limit group, such as a vendor's id. */
  group?: string | { id: string };
}

export interface AttemptError {
  attempt: number;
  at: number;
  kind: string;
  error: string;
}

export declare class Job<Data = unknown, Result = unknown> {
  queue: Queue;
  id: string;
  /** The job type: the plugin handler that runs it. */
  name: string;
  data: Data;
  /** What its producer set (the runner's names: `delay_ms`, `keep_completed`, ...). */
  opts: Record<string, unknown>;
  /** From `add`: false when a job with its `jobId` was there already. */
  created?: boolean;
  state?: JobState;
  attemptsMade?: number;
  timestamp: number;
  progress?: number;
  returnvalue?: Result | null;
  failedReason?: string;
  errors?: AttemptError[];
  log?: unknown;
  stalls?: number;
  finishedOn?: number;
  delayedUntil?: number;
  group?: string;
  deadLetter?: { queue: string; id: string; failed_at: number };
  /** Resolves with the return value; rejects with the failure, or a `WaitTimeoutError` after `ttl` ms. */
  waitUntilFinished(ttl?: number): Promise<Result>;
  waitUntilFinished(queueEvents: QueueEvents, ttl?: number): Promise<Result>;
  getState(): Promise<JobState | 'unknown'>;
}

export interface QueueOptions {
  /** An ioredis client or cluster (left open by `close`), a URL, or ioredis options. */
  connection?: Redis | Cluster | RedisOptions | string;
  /** The runners' `[redis] prefix` (default `jr`). */
  prefix?: string;
}

export interface JobCounts {
  waiting: number;
  delayed: number;
  active: number;
  completed: number;
  failed: number;
  /** Flow parents waiting for their children (BullMQ's `waiting-children`). */
  waitingChildren: number;
  paused: boolean;
}

export declare class Queue<Data = unknown, Result = unknown> {
  constructor(name: string, options?: QueueOptions);
  readonly name: string;
  readonly prefix: string;
  add(type: string, payload: Data, opts?: JobsOptions): Promise<Job<Data, Result>>;
  addBulk(jobs: { name: string; data: Data; opts?: JobsOptions }[]): Promise<Job<Data, Result>[]>;
  getJob(id: string): Promise<Job<Data, Result> | null>;
  getJobCounts(): Promise<JobCounts>;
  close(): Promise<void>;
}

export interface QueueEventsOptions extends QueueOptions {
  /** Start after this event id (default `$`: from now on). */
  lastEventId?: string;
}

/** A queue's events: `added`, `completed`, `failed`, `retrying`, `progress`, ... once per job. */
export declare class QueueEvents extends EventEmitter {
  constructor(name: string, options?: QueueEventsOptions);
  on(event: string, listener: (args: { jobId: string; [field: string]: string }, id: string) => void): this;
  waitUntilReady(): Promise<void>;
  close(): Promise<void>;
}
