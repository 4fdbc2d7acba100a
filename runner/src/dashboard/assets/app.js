// Live updates for the dashboard, over server-sent events: counts per queue
// every second; on the overview, the live chart of jobs completed and
// failed per second (the change in the totals the stream sends each
// second; a second the stream missed is drawn as a gap, not a zero); on a
// queue's page, "select all"; copy buttons for JSON; and on a job's page, a reload as soon as the job's state
// changes (checked against the API each second while it is unfinished, so
// a change that happened before the stream started is not missed).
(function () {
  // Copy buttons copy the text of the element they name (a JSON document).
  for (const button of document.querySelectorAll('button.copy')) {
    button.addEventListener('click', () => {
      const target = document.getElementById(button.dataset.copy);
      if (!target || !navigator.clipboard) return;
      navigator.clipboard.writeText(target.textContent).then(() => {
        button.textContent = 'Copied';
        setTimeout(() => { button.textContent = 'Copy'; }, 1500);
      });
    });
  }
  // The queue page's "select all" box selects every job of the page.
  const all = document.getElementById('select-all');
  if (all) {
    all.addEventListener('change', () => {
      for (const box of document.querySelectorAll('input[name="ids"]')) box.checked = all.checked;
    });
  }
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
  const live = document.getElementById('live');
  if (live) {
    const seconds = Number(live.dataset.seconds) || 120;
    const svg = live.querySelector('svg');
    const ns = 'http://www.w3.org/2000/svg';
    const points = [];
    let last = null;
    const draw = () => {
      const max = Math.max(1, ...points.map((p) => (p ? p.completed + p.failed : 0)));
      document.getElementById('live-max').textContent = max;
      const now = points[points.length - 1];
      document.getElementById('live-now').textContent = now
        ? `per second: ${now.completed} completed, ${now.failed} failed now`
        : 'per second';
      svg.replaceChildren();
      points.forEach((p, i) => {
        if (!p) return;
        const x = seconds - points.length + i;
        const bar = (cls, y, h) => {
          const r = document.createElementNS(ns, 'rect');
          r.setAttribute('class', cls);
          r.setAttribute('x', x);
          r.setAttribute('y', y);
          r.setAttribute('width', 0.8);
          r.setAttribute('height', h);
          svg.appendChild(r);
        };
        const hc = p.completed ? Math.max(0.8, (p.completed / max) * 98) : 0;
        const hf = p.failed ? Math.max(0.8, (p.failed / max) * 98) : 0;
        if (hc) bar('done', 100 - hc, hc);
        if (hf) bar('failed', 100 - hc - hf, hf);
      });
    };
    source.addEventListener('finished', (e) => {
      const t = JSON.parse(e.data);
      t.at = Date.now();
      if (last) {
        // Seconds the stream skipped (a reconnection) are gaps.
        const gap = Math.round((t.at - last.at) / 1000) - 1;
        for (let i = 0; i < Math.min(gap, seconds); i++) points.push(null);
        // Totals that went down (a queue removed) start the rate over.
        const dc = t.completed - last.completed;
        const df = t.failed - last.failed;
        points.push(dc >= 0 && df >= 0 ? { completed: dc, failed: df } : null);
        // The totals above the charts count these too.
        if (dc > 0 || df > 0) {
          for (const [kind, d] of [['completed', dc], ['failed', df]]) {
            if (d <= 0) continue;
            for (const cell of document.querySelectorAll(`[data-total="${kind}"]`)) {
              cell.textContent = Number(cell.textContent) + d;
              if (kind === 'failed') cell.classList.add('bad');
            }
          }
        }
        while (points.length > seconds) points.shift();
        draw();
      }
      last = t;
    });
    source.addEventListener('error', () => { last = null; });
  }
  source.addEventListener('job', (e) => {
    const ev = JSON.parse(e.data);
    if (page.queue === ev.queue && page.job === ev.id) window.location.reload();
  });
})();
