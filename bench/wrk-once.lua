-- bench/wrk-replay.lua, but starting at the first line and stopping once every line has been
-- answered (the bench's mixed runs: the same requests, in the same order, every run). A
-- separate script so that only these runs define `response`, which makes wrk collect every
-- response's headers and body.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "wrk-replay.lua")

local replay_init = init
local lines = 0
local answered = 0

init = function(args)
  replay_init(args)
  counter = 0
  lines = #requests
end

response = function(status, headers, body)
  answered = answered + 1
  if answered == lines then
    -- wrk's main thread sleeps for the whole -d; the caller sends SIGINT on this line, and
    -- wrk then reports the time it really ran.
    io.write("BENCH_ONCE_DONE\n")
    io.flush()
    wrk.thread:stop()
  end
end
