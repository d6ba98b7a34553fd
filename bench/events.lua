-- POST /fault/events load for wrk: batches of $BATCH events in a realistic mix, 70% triggers
-- (half of them onto a resource this thread believes open, so they deduplicate; half onto a
-- closed one, so they open a fault) and 30% resolves of open resources. Each wrk thread owns
-- its own fleet of $RESOURCES resources (run one connection per thread), so requests never race
-- on one resource.
local batch = tonumber(os.getenv("BATCH") or "1000")
local resources = tonumber(os.getenv("RESOURCES") or "5000")
local key = os.getenv("KEY") or ""
local severities = { "CRITICAL", "HIGH", "HIGH", "MEDIUM", "MEDIUM", "MEDIUM", "LOW", "LOW" }
local threads_seen = 0

function setup(thread)
    threads_seen = threads_seen + 1
    thread:set("tid", threads_seen)
end

local open, open_at, closed = {}, {}, {}
local prefix

function init(args)
    prefix = string.format("b%d-%d", tid, math.random(1, 1e9))
    math.randomseed(tid * 7919 + os.time())
    for i = 1, resources do
        closed[i] = i
    end
end

-- Remove and return a random element of list `from` (its order does not matter).
local function take(from)
    local i = math.random(1, #from)
    local v = from[i]
    from[i] = from[#from]
    from[#from] = nil
    return v
end

local function trigger(n)
    local site = n % 500
    local sev = severities[math.random(1, #severities)]
    return string.format(
        '{"action":"trigger","resource_id":"tun_%s_%d","type":"wantunnel","severity":"%s",' ..
        '"message":"WAN tunnel %d down at site %d","cause":"BFD session down",' ..
        '"resource_ancestry_path":"site_%s_%d|dev_%s_%d|tun_%s_%d"}',
        prefix, n, sev, n, site, prefix, site, prefix, n % 2000, prefix, n)
end

local function resolve(n)
    return string.format('{"action":"resolve","resource_id":"tun_%s_%d","type":"wantunnel"}', prefix, n)
end

function request()
    local events = {}
    for i = 1, batch do
        local r = math.random()
        if r < 0.35 and #open > 0 then
            events[i] = trigger(open[math.random(1, #open)]) -- deduplicates
        elseif r < 0.70 or #open == 0 then
            if #closed == 0 then
                events[i] = trigger(open[math.random(1, #open)])
            else
                local n = take(closed)
                open[#open + 1] = n
                events[i] = trigger(n) -- opens a fault
            end
        else
            local n = take(open)
            closed[#closed + 1] = n
            events[i] = resolve(n) -- resolves it
        end
    end
    local body = '{"events":[' .. table.concat(events, ",") .. ']}'
    return wrk.format("POST", "/fault/events",
        { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. key }, body)
end
