-- wrk script: one job a request to the runner's enqueue endpoint.
-- The harness runs it (`cargo xtask bench --only http`) as
--   wrk -t1 -c32 -d8s -s bench/http/post.lua \
--       -H "authorization: Bearer TOKEN" http://127.0.0.1:PORT/api/v1/queues/bench/jobs
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
wrk.body = '{"type":"noop","payload":{}}'

-- wrk counts answers of 400 and over; the harness fails a run with any,
-- so that a run of errors cannot pass as a rate.
function done(summary, latency, requests)
  io.write(string.format("error responses: %d\n", summary.errors.status))
end
