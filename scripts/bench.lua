-- wrk script for scripts/bench.sh: POSTs a ~600-byte CreateDiscount4 input
-- as an urgent Bubblehouse hook with a unique X-Request-ID per request, and
-- counts every non-2xx status (wrk's own "Non-2xx or 3xx" count misses 3xx).
--
-- Environment: BENCH_AUTH is sent as Authorization (omitted when unset);
-- BENCH_RUN makes request IDs unique across runs (default: the clock).

local threads = {}
local next_id = 0

-- setup runs in the main Lua state once per thread, before the thread starts.
function setup(thread)
   next_id = next_id + 1
   thread:set("thread_id", next_id)
   table.insert(threads, thread)
end

local run = os.getenv("BENCH_RUN") or tostring(os.time())
local n = 0
local prefix, headers, body

-- Per-thread counters, read back in done() with thread:get.
non2xx = 0
statuses = {}

local function build_body()
   local fields = {
      '"code":"BENCH-SPRING-10OFF"',
      '"title":"Spring sale: 10 off your next order"',
      '"amount":"10.00"',
      '"currency":"USD"',
      '"kind":"fixed_amount"',
      '"customer_email":"jane.doe+bench@example.com"',
      '"customer_id":"cus_8f3a2b1c9d"',
      '"min_order_amount":"50.00"',
      '"expires_at":"2030-06-30T23:59:59Z"',
      '"usage_limit":1',
   }
   local head = "{" .. table.concat(fields, ",") .. ',"notes":"'
   local tail = '"}'
   local text = "Issued by the loyalty programme as a tier reward. " ..
      "Valid once per customer on full-price items only; not combinable " ..
      "with other offers. Support may reissue on request. "
   local want = 600 - #head - #tail
   local notes = string.rep(text, math.ceil(want / #text)):sub(1, want)
   return head .. notes .. tail
end

function init(args)
   prefix = "bench-" .. run .. "-" .. tostring(thread_id) .. "-"
   headers = {
      ["Content-Type"] = "application/json",
      ["X-BH-Urgency"] = "urgent",
   }
   local auth = os.getenv("BENCH_AUTH")
   if auth and auth ~= "" then
      headers["Authorization"] = auth
   end
   body = build_body()
end

function request()
   n = n + 1
   headers["X-Request-ID"] = prefix .. n
   return wrk.format("POST", nil, headers, body)
end

function response(status, hdrs, resp_body)
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
      statuses[status] = (statuses[status] or 0) + 1
   end
end

function done(summary, latency, requests)
   local total, by_status = 0, {}
   for _, t in ipairs(threads) do
      total = total + t:get("non2xx")
      for s, c in pairs(t:get("statuses")) do
         by_status[s] = (by_status[s] or 0) + c
      end
   end
   local e = summary.errors
   io.write(string.format("bench non-2xx: %d\n", total))
   for s, c in pairs(by_status) do
      io.write(string.format("bench status %d: %d\n", s, c))
   end
   io.write(string.format("bench socket errors: %d\n", e.connect + e.read + e.write + e.timeout))
   io.write(string.format("bench body bytes: %d\n", #build_body()))
end
