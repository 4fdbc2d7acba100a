-- wrk script: 1000 jobs a request to the runner's bulk enqueue endpoint.
-- The harness runs it (`cargo xtask bench --only http`) as
--   wrk -t1 -c2 -d8s -s bench/http/post-bulk.lua \
--       -H "authorization: Bearer TOKEN" http://127.0.0.1:PORT/api/v1/queues/bench/jobs/bulk
local jobs = {}
for i = 1, 1000 do
  jobs[i] = '{"type":"noop","payload":{}}'
end
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
wrk.body = '{"jobs":[' .. table.concat(jobs, ",") .. ']}'

function done(summary, latency, requests)
  io.write(string.format("error responses: %d\n", summary.errors.status))
end
