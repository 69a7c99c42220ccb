-- Replays a file of requests (one per line: method \t path \t headers \t body; headers are
-- "Name: value" joined by \1), cycling through it, and prints one machine-readable summary.
requests = {} -- global: bench/wrk-once.lua reads it
counter = 0

init = function(args)
  local f = assert(io.open(args[1], "r"))
  for line in f:lines() do
    local method, path, headers, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
    if method then
      local h = {}
      for kv in headers:gmatch("[^\1]+") do
        local k, v = kv:match("^([^:]+): (.*)$")
        if k then h[k] = v end
      end
      if body == "" then body = nil end
      requests[#requests + 1] = wrk.format(method, path, h, body)
    end
  end
  f:close()
  math.randomseed(os.time())
  counter = math.random(#requests) - 1
end

request = function()
  counter = counter % #requests + 1
  return requests[counter]
end

done = function(summary, latency, _)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"socket_errors":%d,"non2xx":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99)))
end
