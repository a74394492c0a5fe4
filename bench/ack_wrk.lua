-- wrk script of bench/ack_bench.py: POST unique signed webhook bodies, count the answers.
--
--   ACK_BODIES=bodies.tsv ACK_THREADS=2 wrk -t2 -c16 -d10s --latency -s bench/ack_wrk.lua URL
--
-- ACK_BODIES is a file written by ack_bench.py, one request a line: the signature header's
-- value, a tab, the JSON body. Thread i of ACK_THREADS sends lines i, i + ACK_THREADS, ...
-- (0-based), so no body is sent twice unless a thread runs out and starts again ("reused").
-- response() counts per thread: 2xx, other statuses, and the JSON "status" of the body
-- ("queued", "duplicate"); done() prints one line "ACK_RESULT {json}" for ack_bench.py.
-- Defining response() makes wrk parse every answer, which slows it a little: it does so for
-- every receiver alike, so the comparison stays fair.

local threads = {}

function setup(thread)
   thread:set("id", #threads)
   table.insert(threads, thread)
end

-- per thread (globals, so that done() can read them with thread:get)
requests, count, sent = {}, 0, 0
ok, non_2xx, queued, duplicate = 0, 0, 0, 0

function init(args)
   local path = os.getenv("ACK_BODIES")
   local every = tonumber(os.getenv("ACK_THREADS") or "1")
   local number = 0
   for line in io.lines(path) do
      if number % every == id then
         local tab = string.find(line, "\t", 1, true)
         local headers = {
            ["Content-Type"] = "application/json",
            ["X-SuperOffice-Signature"] = string.sub(line, 1, tab - 1),
         }
         count = count + 1
         requests[count] = wrk.format("POST", "/webhooks/superoffice", headers,
                                      string.sub(line, tab + 1))
      end
      number = number + 1
   end
end

function request()
   sent = sent + 1
   if count == 0 then
      return wrk.format("POST", "/webhooks/superoffice")  -- no bodies at all: a 401 each
   end
   return requests[(sent - 1) % count + 1]  -- past the last body: the first again (reused)
end

function response(status, headers, body)
   if status >= 200 and status < 300 then
      ok = ok + 1
   else
      non_2xx = non_2xx + 1
   end
   if string.find(body, '"status":%s*"queued"') then
      queued = queued + 1
   elseif string.find(body, '"status":%s*"duplicate"') then
      duplicate = duplicate + 1
   end
end

function done(summary, latency, requests_)
   local totals = {ok = 0, non_2xx = 0, queued = 0, duplicate = 0, bodies = 0, sent = 0,
                   reused = 0}
   for _, thread in ipairs(threads) do
      for _, name in ipairs({"ok", "non_2xx", "queued", "duplicate", "sent"}) do
         totals[name] = totals[name] + thread:get(name)
      end
      local bodies, sent_ = thread:get("count"), thread:get("sent")
      totals.bodies = totals.bodies + bodies
      totals.reused = totals.reused + math.max(0, sent_ - bodies)  -- requests made, not answers
   end
   local errors = summary.errors
   local fields = {
      string.format('"requests": %d', summary.requests),
      string.format('"duration_us": %d', summary.duration),
      string.format('"p50_us": %d', latency:percentile(50)),
      string.format('"p99_us": %d', latency:percentile(99)),
      string.format('"max_us": %d', latency.max),
      string.format('"mean_us": %.1f', latency.mean),
      string.format('"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}',
                    errors.connect, errors.read, errors.write, errors.status, errors.timeout),
   }
   for name, value in pairs(totals) do
      table.insert(fields, string.format('"%s": %d', name, value))
   end
   io.write("ACK_RESULT {" .. table.concat(fields, ", ") .. "}\n")
end
