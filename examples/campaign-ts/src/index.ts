// A campaign in TypeScript, built on flows (contract 0.2). Two job types:
//
// - `campaign` takes `{id, subject, text, recipients: [...]}` and enqueues
//   a flow: one `email` job per recipient (the runner's email plugin sends
//   them) under a `campaign-report` job, the flow's parent. A recipient
//   whose email fails for good does not stop the campaign (`ignore`).
// - `campaign-report` runs once every email has been sent or has failed
//   for good, reads its children a page at a time and reports the counts,
//   with the failures.
//
// Build:  npm ci (in examples/), then npm run build (here)
// Grant:  [plugins.campaign-ts] may_enqueue = ["emails:email", "campaigns:campaign-report"]
//         (and the queues `campaigns` and `emails` consumed by runners)

import * as flow from 'jobrunner:plugin/flow@0.2.0';
import * as log from 'jobrunner:plugin/log@0.2.0';
import * as queue from 'jobrunner:plugin/queue@0.2.0';
import type { Failure, Job, PluginInfo } from 'jobrunner:plugin/types@0.2.0';

const NAME = 'campaign-ts';
const VERSION = '0.1.0';
/** The most recipients one campaign takes: a flow holds at most 100,000 jobs. */
const MAX_RECIPIENTS = 99_999;
/** Failures listed in a report; the counts cover all of them. */
const MAX_LISTED = 100;

interface Campaign {
  id: string;
  subject: string;
  text: string;
  recipients: string[];
  /** Where the emails go (`emails`) and the report runs (`campaigns`). */
  email_queue?: string;
  report_queue?: string;
}

/** A failure the runner records as the job's (the exception's `payload`). */
class JobFailure extends Error {
  constructor(readonly payload: Failure) {
    super(payload.tag === 'retry-after' ? payload.val.message : payload.val);
  }
}

const permanent = (why: string) => new JobFailure({ tag: 'permanent', val: why });

function parseCampaign(text: string): Campaign {
  let c: Partial<Campaign>;
  try {
    c = JSON.parse(text) as Partial<Campaign>;
  } catch (e) {
    throw permanent(`invalid payload: ${(e as Error).message}`);
  }
  if (typeof c?.id !== 'string' || !/^[A-Za-z0-9_.:-]{1,64}$/.test(c.id)) {
    throw permanent('invalid payload: `id` must be 1 to 64 letters, digits, `_`, `.`, `:` or `-`');
  }
  if (typeof c.subject !== 'string' || typeof c.text !== 'string') {
    throw permanent('invalid payload: `subject` and `text` must be strings');
  }
  const r = c.recipients;
  if (!Array.isArray(r) || r.length === 0 || r.length > MAX_RECIPIENTS || !r.every((a) => typeof a === 'string')) {
    throw permanent(`invalid payload: \`recipients\` must be 1 to ${MAX_RECIPIENTS} addresses`);
  }
  return c as Campaign;
}

/** No option of its own: the queue's defaults apply. */
function options(jobId: string): queue.EnqueueOptions {
  return { delayMs: undefined, priority: undefined, jobId, maxAttempts: undefined, group: undefined };
}

/** `campaign`: the flow. Its ids come from the campaign's, so a retried
 * attempt enqueues the same flow, which the queue then leaves as it is. */
function start(c: Campaign): string {
  const emails = c.email_queue ?? 'emails';
  const reports = c.report_queue ?? 'campaigns';
  const jobs: queue.FlowJob[] = [
    {
      queue: reports,
      jobType: 'campaign-report',
      payload: JSON.stringify({ campaign: c.id }),
      options: options(`campaign-${c.id}`),
      parent: undefined,
      onFailure: 'fail',
    },
  ];
  c.recipients.forEach((to, i) => {
    jobs.push({
      queue: emails,
      jobType: 'email',
      payload: JSON.stringify({ to, subject: c.subject, text: c.text }),
      options: options(`campaign-${c.id}-${i}`),
      parent: 0,
      onFailure: 'ignore',
    });
  });
  const report = queue.enqueueFlow(jobs);
  log.write('info', `campaign ${c.id}: ${c.recipients.length} emails, reported by ${reports}/${report}`);
  return JSON.stringify({ campaign: c.id, report, emails: c.recipients.length });
}

/** `campaign-report`: every child's outcome, a page at a time. */
function report(job: Job): string {
  const campaign = (JSON.parse(job.payload) as { campaign?: string }).campaign ?? job.id;
  const failures: { id: string; error: string }[] = [];
  let counts: flow.ChildCounts | undefined;
  for (let from: number | undefined = 1; from !== undefined; ) {
    const page = flow.children(from, 500);
    if (page === undefined) {
      throw permanent('campaign-report runs as the parent of a campaign flow, and this job has no children');
    }
    counts = page.counts;
    for (const child of page.children) {
      if (child.state === 'failed' && failures.length < MAX_LISTED) {
        failures.push({ id: child.id, error: child.error ?? '' });
      }
    }
    from = page.next;
  }
  const c = counts!;
  log.write('info', `campaign ${campaign}: ${c.completed} sent, ${c.failed} failed, ${c.removed} removed of ${c.total}`);
  return JSON.stringify({ campaign, total: c.total, sent: c.completed, failed: c.failed, removed: c.removed, failures });
}

export const handler = {
  describe(): PluginInfo {
    return { name: NAME, version: VERSION, jobTypes: ['campaign', 'campaign-report'] };
  },

  handle(job: Job): string | undefined {
    switch (job.type) {
      case 'campaign':
        return start(parseCampaign(job.payload));
      case 'campaign-report':
        return report(job);
      default:
        throw permanent(`${NAME} does not handle jobs of type ${job.type}`);
    }
  },
};
