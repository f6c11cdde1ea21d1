-- wrk script for bench/run.py: every request is GET /r/<code> for a code chosen at random
-- among those in the file given after `--` (one per line), with one of a few real
-- user agents (mail clients and browsers), as clicks from emails arrive.
-- An optional second argument after `--` chooses where the clicks seem to come from:
--   "one-address" (the default): every request from wrk's own address, 127.0.0.1, and
--     without Accept-Language, as the bench has always sent them;
--   "people": each request with an X-Forwarded-For of an address of its own (for a server run
--     with --trusted-proxies 127.0.0.1/32), an Accept-Language and a current browser's (or mail
--     client's) user agent, as people's clicks arrive:
--     with every request from one address, the classifier rightly sees one client clicking for
--     thousands of recipients. The addresses are in 100.64.0.0/10 (carrier-grade NAT, where
--     many people's phones are), which no shipped scanner or crawler list contains.
-- An optional third argument is the path before the code: "/r/" (the default) or "/o/" (open pixels).
-- done() prints one machine-readable line: BENCH {json}.

local requests_ = {}
local people = false
local prefix = "/r/"
local tails = {}
local counter = 0
local user_agents = {
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)",
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.80",
  "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
  "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36",
  "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17531; Pro)",
  "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
}

-- people: browsers as current as the classifier's data (December 2026), and people's mail clients.
local people_agents = {
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/154.0.0.0 Safari/537.36",
  "Mozilla/5.0 (iPhone; CPU iPhone OS 18_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/26.1 Mobile/15E148 Safari/604.1",
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/26.1 Safari/605.1.15",
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/154.0.0.0 Safari/537.36 Edg/154.0.0.0",
  "Mozilla/5.0 (X11; Linux x86_64; rv:157.0) Gecko/20100101 Firefox/157.0",
  "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/154.0.0.0 Mobile Safari/537.36",
  "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17531; Pro)",
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:157.0) Gecko/20100101 Firefox/157.0",
}

local thread_count = 0
function setup(thread)
  thread_count = thread_count + 1
  thread:set("thread_id", thread_count)
end

function init(args)
  local path = args[1] or error("usage: wrk ... -s redirect.lua URL -- CODES_FILE [one-address|people] [/r/|/o/]")
  local mode = args[2] or "one-address"
  if mode ~= "one-address" and mode ~= "people" then error("unknown mode " .. mode) end
  people = mode == "people"
  prefix = args[3] or prefix
  math.randomseed(os.time() * 1000 + (thread_id or 0))
  counter = (thread_id or 0) * 1000003
  if people then
    -- Each request built when sent (codes may be a million: whole requests would not fit in
    -- memory): "GET " .. prefix .. code .. one of these tails .. its own X-Forwarded-For.
    for k, agent in ipairs(people_agents) do
      local text = wrk.format("GET", "/", { ["User-Agent"] = agent, ["Accept"] = "text/html",
                                            ["Accept-Language"] = "en-US,en;q=0.9" })
      tails[k] = text:sub(#"GET /" + 1, -3)  -- " HTTP/1.1\r\n…headers…\r\n", without the blank line
    end
  end
  local n = 0
  for line in io.lines(path) do
    if #line > 0 then
      n = n + 1
      if people then
        requests_[n] = line
      else
        requests_[n] = wrk.format("GET", prefix .. line,
          { ["User-Agent"] = user_agents[(n % #user_agents) + 1], ["Accept"] = "text/html" })
      end
    end
  end
  if n == 0 then error("no codes in " .. path) end
end

function request()
  local k = math.random(#requests_)
  if not people then return requests_[k] end
  -- A new address per request, scattered over the /24s of 100.64.0.0/10 (2^22 addresses) by a
  -- multiplicative step, so consecutive requests do not share a network.
  counter = counter + 1
  local a = (counter * 2654435761) % 4194304
  return "GET " .. prefix .. requests_[k] .. tails[(k % #tails) + 1] .. string.format(
    "X-Forwarded-For: 100.%d.%d.%d\r\n\r\n", 64 + math.floor(a / 65536), math.floor(a / 256) % 256, a % 256)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
