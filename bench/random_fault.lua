-- GET /fault/{id} for wrk, each request a fault drawn at random from the file $IDS (one id a
-- line), so that reads spread over the whole table instead of one hot row.
local ids = {}
local key = os.getenv("KEY") or ""

function init(args)
    for line in io.lines(os.getenv("IDS")) do
        ids[#ids + 1] = line
    end
    math.randomseed(os.time() + math.random(1, 1e6))
end

function request()
    return wrk.format("GET", "/fault/" .. ids[math.random(1, #ids)], { ["Authorization"] = "Bearer " .. key })
end
