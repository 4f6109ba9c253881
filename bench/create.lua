-- wrk script: POST /api/v1/jobs with a job name unique per run, thread and
-- request ("<run tag>-<thread>-<n>"); the job never fires (yearly schedule).
--   wrk -t2 -c64 -d5s --latency -s bench/create.lua http://HOST:PORT -- TAG
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_id", #threads)
end

function init(args)
  prefix = (args[1] or "bench") .. "-" .. thread_id .. "-"
  counter = 0
end

function request()
  counter = counter + 1
  local body = '{"name":"' .. prefix .. counter .. '","schedule":"0 0 1 1 *",' ..
      '"webhook":{"url":"https://example.com/chronos-hook"}}'
  return wrk.format("POST", "/api/v1/jobs",
                    {["Content-Type"] = "application/json"}, body)
end
