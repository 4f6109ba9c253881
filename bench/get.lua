-- wrk script: GET one job by id.
--   wrk -t2 -c64 -d5s --latency -s bench/get.lua http://HOST:PORT -- JOB_ID
function init(args)
  path = "/api/v1/jobs/" .. args[1]
end

function request()
  return wrk.format("GET", path)
end
