-- POST /heartbeat load for wrk: batches of $BATCH heartbeats. Each wrk thread (run one
-- connection per thread) owns a slice of a fleet of $SITES sites and reports them in turn,
-- as routers behind one collector would.
local batch = tonumber(os.getenv("BATCH") or "1000")
local sites = tonumber(os.getenv("SITES") or "100000")
local threads = tonumber(os.getenv("THREADS") or "1")
local key = os.getenv("KEY") or ""
local threads_seen = 0

function setup(thread)
    threads_seen = threads_seen + 1
    thread:set("tid", threads_seen)
end

local first, last, next_site

function init(args)
    local per = math.floor(sites / threads)
    first = (tid - 1) * per
    last = first + per - 1
    next_site = first
end

function request()
    local items = {}
    for i = 1, batch do
        items[i] = string.format('{"site_id":"site_%06d","name":"Branch %d"}', next_site, next_site)
        next_site = next_site + 1
        if next_site > last then
            next_site = first
        end
    end
    local body
    if batch == 1 then
        body = items[1]
    else
        body = '{"heartbeats":[' .. table.concat(items, ",") .. ']}'
    end
    return wrk.format("POST", nil,
        { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. key }, body)
end
