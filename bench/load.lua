-- wrk script for bench/scale.py: creates the jobs PREFIX00000000 ..
-- PREFIX<TOTAL-1> (POST /api/v1/jobs), job i with schedule "M * * * *",
-- M = i mod 60 (once an hour, minutes spread over the hour), calling URL.
--   wrk -tT -cT -d<budget>s -s bench/load.lua http://HOST:PORT -- \
--       TOTAL T URL PREFIX
-- Run with as many threads as connections (-t = -c): each thread then has
-- one connection and at most one request in flight, so an answer belongs to
-- the last request sent, and a failed create can be sent again. Thread t
-- (1-based) creates i = t-1, t-1+T, ...:
--   201 created; 409 already exists (an earlier attempt was committed
--   although its answer was an error): counted as existing; 5xx and 429
--   (no leader, leader changed, queue full): sent again after 200 ms; a
--   request that got no answer (socket error, timeout: wrk reconnects and
--   asks for a new request) is sent again; any other status: failed.
-- A thread prints "progress <t> <settled>" at most once a second and "done <t> <created> <existing> <failed> <retries>" when its share is
-- settled, then stops (flushed stdout: the caller ends wrk with SIGINT
-- instead of waiting out -d, which wrk's main thread sleeps otherwise).
local threads = {}
local RETRY_DELAY_MS = 200

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function init(args)
  total = tonumber(args[1])
  nthreads = tonumber(args[2])
  url = args[3]
  prefix = args[4] or "scale-"
  nexti = tid - 1
  share = 0
  if nexti < total then
    share = math.floor((total - nexti - 1) / nthreads) + 1
  end
  created, existing, failed, retries, settled = 0, 0, 0, 0, 0
  first_failure, first_retry = "", ""
  last_progress = os.time()
  retry = {}          -- indices to send again
  outstanding = nil   -- index of the create in flight
  backoff = 0
  stopped = false
  -- wrk calls request() once on the first thread's state before the run, to
  -- check the script (script_verify_request); that request is never sent.
  verify_pending = (tid == 1)
  health = wrk.format("GET", "/health")
  headers = {["Content-Type"] = "application/json"}
end

function delay()
  local d = backoff
  backoff = 0
  return d
end

function request()
  if verify_pending then
    verify_pending = false
    return health
  end
  if outstanding ~= nil then  -- no answer came (the connection broke)
    table.insert(retry, outstanding)
    retries = retries + 1
    outstanding = nil
  end
  local i
  if #retry > 0 then
    i = table.remove(retry, 1)
  elseif nexti < total then
    i = nexti
    nexti = nexti + nthreads
  else
    return health  -- share sent (only before the thread stops)
  end
  outstanding = i
  local body = string.format(
      '{"name":"%s%08d","schedule":"%d * * * *","webhook":{"url":"%s"}}',
      prefix, i, i % 60, url)
  return wrk.format("POST", "/api/v1/jobs", headers, body)
end

local function finish()
  if not stopped then
    stopped = true
    io.write(string.format("done %d %d %d %d %d\n", tid, created, existing,
                           failed, retries))
    io.flush()
    wrk.thread:stop()
  end
end

function response(status, hdrs, body)
  local i = outstanding
  local before = settled
  outstanding = nil
  if i ~= nil then
    if status == 201 then
      created = created + 1
      settled = settled + 1
    elseif status == 409 then
      existing = existing + 1
      settled = settled + 1
    elseif status >= 500 or status == 429 then
      table.insert(retry, i)
      retries = retries + 1
      backoff = RETRY_DELAY_MS
      if first_retry == "" then
        first_retry = status .. " " .. string.sub(body or "", 1, 160)
      end
    else
      failed = failed + 1
      settled = settled + 1
      if first_failure == "" then
        first_failure = status .. " " .. string.sub(body or "", 1, 160)
      end
    end
    if settled ~= before and os.time() ~= last_progress then
      last_progress = os.time()
      io.write(string.format("progress %d %d\n", tid, settled))
      io.flush()
    end
  end
  if settled >= share then
    finish()
  end
end

function done(summary, latency, requests)
  local c, e, f, r = 0, 0, 0, 0
  for _, t in ipairs(threads) do
    c = c + (t:get("created") or 0)
    e = e + (t:get("existing") or 0)
    f = f + (t:get("failed") or 0)
    r = r + (t:get("retries") or 0)
    for _, name in ipairs({"first_failure", "first_retry"}) do
      local v = t:get(name)
      if v and v ~= "" then
        io.write(name .. " " .. string.gsub(v, "\n", " ") .. "\n")
      end
    end
  end
  io.write(string.format("total created %d existing %d failed %d retries %d\n",
                         c, e, f, r))
  io.write(string.format("latency_us p50 %d p99 %d max %d\n",
                         latency:percentile(50), latency:percentile(99),
                         latency.max))
end
