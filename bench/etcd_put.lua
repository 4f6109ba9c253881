-- wrk script: puts through etcd's HTTP/JSON gateway (POST /v3/kv/put), a
-- key unique per run, thread and request, and a value of about a job's size.
--   wrk -t2 -c64 -d5s --latency -s bench/etcd_put.lua http://HOST:PORT -- TAG
-- The gateway wants key and value in base64. Rather than encode, the key is
-- written directly as base64 text: any string of base64 letters whose length
-- is a multiple of 4 decodes to distinct bytes, so distinct texts give
-- distinct keys. TAG must be base64 letters (A-Z a-z 0-9) of length 4.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_id", #threads)
end

-- 96 bytes of value (a created job's JSON body is about 100 bytes).
local value = string.sub(string.rep("Y2hyb25vcy1iZW5jaC12", 7), 1, 128)

function init(args)
  tag = args[1] or "AAAA"
  counter = 0
end

function request()
  counter = counter + 1
  local key = string.format("%s%04d%012d", tag, thread_id, counter)
  local body = '{"key":"' .. key .. '","value":"' .. value .. '"}'
  return wrk.format("POST", "/v3/kv/put",
                    {["Content-Type"] = "application/json"}, body)
end
