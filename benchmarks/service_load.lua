-- wrk script of bench_service_load.py --wrk: each connection alternates GET suggestions of a random context
-- and POST a click on the first item it was shown. Run with one connection per thread (-t N -c N) so that
-- a thread's request() and response() strictly alternate and the click names the right context.
--   CLICKLOOP_KEY=clk_... CONTEXTS=1000 wrk -t16 -c16 -d15s --latency -s service_load.lua http://127.0.0.1:8000
local key = os.getenv("CLICKLOOP_KEY")
local n_contexts = tonumber(os.getenv("CONTEXTS") or "1000")
local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(os.time() * 1000 + tid)
  wrk.headers["Authorization"] = "Bearer " .. key
  suggestions_ok = 0
  accepted = 0
  failed = 0
  serial = 0
end

local context = nil
local click = nil

function request()
  if click ~= nil then
    local body = click
    click = nil
    -- wrk.format replaces wrk.headers with the table it is given: name every header
    local headers = {["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json"}
    return wrk.format("POST", "/v1/contexts/" .. context .. "/events", headers, body)
  end
  context = string.format("ctx-%04d", math.random(0, n_contexts - 1))
  return wrk.format("GET", "/v1/contexts/" .. context .. "/suggestions")
end

function response(status, headers, body)
  if status ~= 200 then
    failed = failed + 1
    return
  end
  local impression = body:match('"impression_id":"([^"]+)"')
  if impression ~= nil then
    suggestions_ok = suggestions_ok + 1
    local item = body:match('"item_id":"([^"]+)"')
    serial = serial + 1
    click = string.format(
      '{"events":[{"idempotency_key":"wrk-%d-%d-%d","impression_id":"%s","item_id":"%s"}]}',
      os.time(), tid, serial, impression, item)
    return
  end
  local n = body:match('"accepted":(%d+)')
  if n ~= nil then
    accepted = accepted + tonumber(n)
  end
end

function done(summary, latency, requests)
  local totals = {suggestions_ok = 0, accepted = 0, failed = 0}
  for _, thread in ipairs(threads) do
    for name, _ in pairs(totals) do
      totals[name] = totals[name] + thread:get(name)
    end
  end
  for name, value in pairs(totals) do
    io.write(string.format("clickloop %s=%d\n", name, value))
  end
end
