-- post.lua: wrk script for scripts/bench. POSTs the seed payloads (round robin, each thread
-- starting at a different one) as application/json, counts the answers by status, and prints
-- one machine-readable line in done():
--   hb-bench requests=N ok2xx=N non2xx=N errors=N p50_us=.. p90_us=.. p99_us=.. p999_us=..
--            max_us=.. duration_us=.. rps=.. status_<code>=N ...
-- Any 2xx counts as accepted (hookbridge answers 202, Fluent Bit's in_http 201); every status
-- but 202 is also counted by code.
--
-- Usage: wrk -s post.lua URL -- SEED.json [SEED.json...]
-- Environment (read when the script is loaded, so in every thread):
--   HB_BENCH_RATE     total requests/s to pace to (0 or unset: as fast as possible). Each thread
--                     keeps its own schedule of rate/threads requests per second and delay()
--                     holds each request until its slot (wrk2-like pacing; wrk measures latency
--                     from the send, so there is no coordinated-omission correction).
--   HB_BENCH_THREADS  wrk's -t, needed to split the rate (default 1).

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } hb_timespec;
int clock_gettime(int clk, hb_timespec *ts);
]]
local ts = ffi.new("hb_timespec")
local function now_ms()
   ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
   return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local rate = tonumber(os.getenv("HB_BENCH_RATE") or "0") or 0
local nthreads = tonumber(os.getenv("HB_BENCH_THREADS") or "1") or 1

local threads = {}
local thread_no = 0

function setup(thread)
   thread_no = thread_no + 1
   thread:set("thread_no", thread_no)
   table.insert(threads, thread)
end

local bodies = {}
local reqs = {}
local nreq = 0
local idx = 0
ok2xx = 0
non2xx = 0
statuses = {}

function init(args)
   for _, path in ipairs(args) do
      local f = assert(io.open(path, "rb"))
      local body = f:read("*a")
      f:close()
      table.insert(bodies, body)
   end
   assert(#bodies > 0, "post.lua: give seed files after --")
   local headers = { ["Content-Type"] = "application/json" }
   for i, body in ipairs(bodies) do
      reqs[i] = wrk.format("POST", nil, headers, body)
   end
   nreq = #reqs
   idx = ((thread_no or 1) * 7) % nreq
end

function request()
   idx = idx % nreq + 1
   return reqs[idx]
end

function response(status, headers, body)
   if status >= 200 and status < 300 then
      ok2xx = ok2xx + 1
   else
      non2xx = non2xx + 1
   end
   if status ~= 202 then
      local k = tostring(status)
      statuses[k] = (statuses[k] or 0) + 1
   end
end

if rate > 0 then
   local interval = 1000.0 * nthreads / rate -- ms between this thread's requests
   local next_slot = nil
   function delay()
      local t = now_ms()
      if next_slot == nil or next_slot < t - 1000 then
         next_slot = t -- (re)start the schedule; do not burst to catch up more than 1 s
      end
      next_slot = next_slot + interval
      local d = next_slot - t
      if d < 0 then return 0 end
      return math.floor(d)
   end
end

function done(summary, latency, requests)
   local ok, bad, st = 0, 0, {}
   for _, t in ipairs(threads) do
      ok = ok + (t:get("ok2xx") or 0)
      bad = bad + (t:get("non2xx") or 0)
      local s = t:get("statuses") or {}
      for k, v in pairs(s) do st[k] = (st[k] or 0) + v end
   end
   local e = summary.errors
   local errors = e.connect + e.read + e.write + e.timeout
   local line = string.format(
      "hb-bench requests=%d ok2xx=%d non2xx=%d errors=%d p50_us=%d p90_us=%d p99_us=%d " ..
      "p999_us=%d max_us=%d mean_us=%.0f duration_us=%d rps=%.1f",
      summary.requests, ok, bad, errors,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9), latency.max, latency.mean, summary.duration,
      summary.requests / (summary.duration / 1e6))
   for k, v in pairs(st) do line = line .. string.format(" status_%s=%d", k, v) end
   io.write(line .. "\n")
end
