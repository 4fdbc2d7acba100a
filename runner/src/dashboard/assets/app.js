// Live updates for the dashboard, over server-sent events: counts per queue
// every second; and on a job's page, a reload as soon as the job's state
// changes (checked against the API each second while it is unfinished, so
// a change that happened before the stream started is not missed).
(function () {
  const page = document.body.dataset;
  const shown = document.getElementById('state');
  const unfinished = shown && !['completed', 'failed'].includes(shown.textContent.trim());
  const source = new EventSource('/dashboard/live');
  source.addEventListener('counts', (e) => {
    const queues = JSON.parse(e.data);
    for (const [queue, counts] of Object.entries(queues)) {
      for (const [state, n] of Object.entries(counts)) {
        for (const cell of document.querySelectorAll(`[data-count="${queue}:${state}"]`)) {
          cell.textContent = n;
        }
      }
    }
    if (unfinished && page.queue && page.job) {
      fetch(`/api/v1/queues/${encodeURIComponent(page.queue)}/jobs/${encodeURIComponent(page.job)}`, { credentials: 'same-origin' })
        .then((r) => (r.ok ? r.json() : null))
        .then((job) => {
          if (job && job.state !== shown.textContent.trim()) window.location.reload();
        });
    }
  });
  source.addEventListener('job', (e) => {
    const ev = JSON.parse(e.data);
    if (page.queue === ev.queue && page.job === ev.id) window.location.reload();
  });
})();
