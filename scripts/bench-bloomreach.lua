-- wrk script for scripts/bench.sh: Bloomreach Engagement webhook load.
--
-- BR_MODE=customer (default) POSTs a ~400-byte per-customer JSON
-- ({"phone":...,"text":...,"customer_id":...}); BR_MODE=batch POSTs
-- {"messages":[...]} with BR_ITEMS (default 1000) customers, each with an
-- "id" of "<run>-<thread>-<n>-<i>", so that no item is de-duplicated across
-- requests. Every request has a unique X-Request-ID.
--
-- A request fails when its status is not 2xx, or when a 2xx reply does not
-- start with {"success":true (hookbay writes "success" first; a batch reply
-- has it true only when every customer was accepted, and its per-item
-- "success" fields must not count, hence the prefix test).
--
-- Environment: BENCH_AUTH is sent as Authorization (omitted when unset);
-- BENCH_RUN makes IDs unique across runs (default: the clock).

local threads = {}
local next_id = 0

-- setup runs in the main Lua state once per thread, before the thread starts.
function setup(thread)
   next_id = next_id + 1
   thread:set("thread_id", next_id)
   table.insert(threads, thread)
end

local mode = os.getenv("BR_MODE") or "customer"
local items = tonumber(os.getenv("BR_ITEMS") or "1000")
local run = os.getenv("BENCH_RUN") or tostring(os.time())
local n = 0
local prefix, headers, body
local parts, slots -- batch: the body as pieces, slots take the request's prefix

-- Per-thread counters, read back in done() with thread:get.
non2xx = 0
not_success = 0
statuses = {}
first_bad = ""

local text = "Hi Jana, your order #48213 has shipped and will arrive tomorrow " ..
   "between 9:00 and 13:00. Track it at https://example.com/t/48213 or reply " ..
   "STOP to opt out of delivery updates. "

-- customer returns one customer's fields (without the braces), padded in
-- "text" so that the whole object is about size bytes.
local function customer(i, size)
   local head = string.format('"customer_id":"cus_%08d","phone":"+420601%06d","text":"', i, i % 1000000)
   local want = math.max(size - #head - 3, 0) -- 3: the braces and the closing quote
   return head .. string.rep(text, math.ceil(want / #text) + 1):sub(1, want) .. '"'
end

local function customer_body()
   return "{" .. customer(1, 400) .. "}"
end

-- batch_parts builds {"messages":[{"id":"<slot>-1",...},...]} as a list of
-- pieces; the slots (every id's "<run>-<thread>-<n>") are filled per request,
-- so a request costs one table.concat instead of formatting 1000 items.
-- BR_KEYS=scattered leads each id with a hash of its place in the batch
-- ("0a3f9c1-<slot>-1"), so that a batch's ids spread over the receiver's
-- key index as customer IDs or UUIDs do, instead of following each other.
local scattered = os.getenv("BR_KEYS") == "scattered"
local function batch_parts()
   local p, s = { '{"messages":[' }, {}
   for i = 1, items do
      p[#p + 1] = (i > 1 and ',{"id":"' or '{"id":"')
      if scattered then
         p[#p] = p[#p] .. string.format("%07x-", (i * 2654435761) % 268435456)
      end
      p[#p + 1] = ""
      s[#s + 1] = #p
      p[#p + 1] = "-" .. i .. '",' .. customer(i, 150 - 10) .. "}"
   end
   p[#p + 1] = "]}"
   return p, s
end

function init(args)
   prefix = run .. "-" .. tostring(thread_id) .. "-"
   headers = { ["Content-Type"] = "application/json" }
   local auth = os.getenv("BENCH_AUTH")
   if auth and auth ~= "" then
      headers["Authorization"] = auth
   end
   if mode == "batch" then
      parts, slots = batch_parts()
   else
      body = customer_body()
   end
end

function request()
   n = n + 1
   local id = prefix .. n
   headers["X-Request-ID"] = id
   if parts then
      for _, k in ipairs(slots) do
         parts[k] = id
      end
      return wrk.format("POST", nil, headers, table.concat(parts))
   end
   return wrk.format("POST", nil, headers, body)
end

local function bad(status, resp_body)
   if first_bad == "" then
      first_bad = status .. " " .. resp_body:sub(1, 300)
   end
end

function response(status, hdrs, resp_body)
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
      statuses[status] = (statuses[status] or 0) + 1
      bad(status, resp_body)
   elseif resp_body:sub(1, 15) ~= '{"success":true' then
      not_success = not_success + 1
      bad(status, resp_body)
   end
end

function done(summary, latency, requests)
   local total, nots, by_status, first = 0, 0, {}, ""
   for _, t in ipairs(threads) do
      total = total + t:get("non2xx")
      nots = nots + t:get("not_success")
      for s, c in pairs(t:get("statuses")) do
         by_status[s] = (by_status[s] or 0) + c
      end
      if first == "" then
         first = t:get("first_bad")
      end
   end
   local e = summary.errors
   io.write(string.format("bench non-2xx: %d\n", total))
   io.write(string.format("bench not-success: %d\n", nots))
   for s, c in pairs(by_status) do
      io.write(string.format("bench status %d: %d\n", s, c))
   end
   io.write(string.format("bench socket errors: %d\n", e.connect + e.read + e.write + e.timeout))
   if mode == "batch" then
      local p = batch_parts()
      local m = table.concat(p) -- empty slots: add the prefix's length
      local size = #m + items * #(run .. "-1-1")
      io.write(string.format("bench body bytes: %d (%d customers)\n", size, items))
   else
      io.write(string.format("bench body bytes: %d\n", #customer_body()))
   end
   if first ~= "" then
      io.write("bench first failure: " .. first .. "\n")
   end
end
