-- POST /integrations/pagerduty/v2/enqueue for wrk: one PagerDuty trigger a request, each of a
-- new dedup_key (so each opens a fault) on a resource of its own. KEY is the routing key.
local key = os.getenv("KEY") or ""
local n = 0
local prefix

function init(args)
    prefix = string.format("pd%d", math.random(1, 1e9))
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

function request()
    n = n + 1
    local body = string.format(
        '{"routing_key":"%s","event_action":"trigger","dedup_key":"%s-%d","payload":' ..
        '{"summary":"BGP session down","source":"%s-r%d","severity":"error","group":"site_%d","class":"bgp"}}',
        key, prefix, n, prefix, n, n % 200)
    return wrk.format(nil, nil, nil, body)
end
