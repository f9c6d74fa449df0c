-- Applies the runs of one or more SKUs, each run's deltas in order and each
-- delta at most once, while the caller holds each SKU's lock, and releases
-- each lock. One call carries many SKUs because the call itself, not the
-- work in it, was most of what a run of one delta cost Redis.
-- On Redis Cluster the caller puts in one call only SKUs of one hash slot.
-- KEYS, six per SKU, in the order of its run in ARGV:
--   stock      integer: what can be sold, on hand less reserved; absent means 0
--   applied    hash delta_id -> outcome; the dedup record and the memory
--              of what was decided, so a redelivery re-emits the same movement
--   ledger     list of "delta_id|quantity|stock_after", one per applied delta
--   backorder  "1" lets this SKU's stock go below zero
--   lock       the SKU's lock: SET NX PX with a random token, as redislock takes it
--   reserved   integer: units paid orders hold until they ship; absent means 0
-- ARGV[1] applied_at (ms)
-- then per SKU: the caller's lock token for it, its number of deltas n, and
--   four per delta: delta_id, the signed change of stock, the signed
--   change of reserved, and the delta it reverses or "": a release or a
--   commit takes back only a sale that was applied, never one that was
--   refused, and a restock only a commit that was applied.
-- A sale recorded before reservations existed ("APPLIED|stock|at|", four
-- fields) reserved nothing: what reverses it changes no reserved units.
-- A SKU's run applies only while its lock holds the caller's token
-- (fencing): a caller whose lock expired, and whose SKU another holder may
-- have taken since, changes nothing of that SKU.
-- Returns one element per SKU: the string LOCKLOST when its lock was not
-- held (nothing of it changed), else {dup, outcome, dup, outcome, ...}, one
-- pair per delta in order: dup is 1 for a delta seen before, 0 for a new
-- one; outcome is "APPLIED|stock_after|applied_at||reserved_after" or
-- "REFUSED|stock|applied_at|reason|reserved".

-- unpack puts every element on Lua's C stack, which is bounded (8000), so
-- long argument lists go in slices.
local slice = 1000

local function hmget(key, fields, into)
  for i = 1, #fields, slice do
    local last = math.min(i + slice - 1, #fields)
    local got = redis.call('HMGET', key, unpack(fields, i, last))
    for j = i, last do
      into[fields[j]] = got[j - i + 1]
    end
  end
end

local function push(cmd, key, values)
  for i = 1, #values, slice do
    redis.call(cmd, key, unpack(values, i, math.min(i + slice - 1, #values)))
  end
end

local at = ARGV[1]
local out = {}
local a = 2
for k = 1, #KEYS, 6 do
  local token, first = ARGV[a], a + 2
  a = first + 4 * tonumber(ARGV[a + 1])
  local cur = redis.call('MGET', KEYS[k + 4], KEYS[k + 3], KEYS[k], KEYS[k + 5])
  if cur[1] ~= token then
    out[#out + 1] = 'LOCKLOST'
  else
    local backorder = cur[2] == '1'
    local stock = tonumber(cur[3] or '0')
    local reserved = tonumber(cur[4] or '0')
    local fields = {}
    for i = first, a - 1, 4 do
      fields[#fields + 1] = ARGV[i]
      if ARGV[i + 3] ~= '' then
        fields[#fields + 1] = ARGV[i + 3]
      end
    end
    -- known holds every outcome this run can read, as stored before it and
    -- as decided by it, so a delta sees the ones before it in the run.
    local known = {}
    hmget(KEYS[k + 1], fields, known)
    local res, decided, ledger, net, netReserved, applied = {}, {}, {}, 0, 0, false
    for i = first, a - 1, 4 do
      local id, qty, rqty, reverses = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
      local outcome = known[id]
      if outcome then
        res[#res + 1] = 1
      else
        local reversed = reverses ~= '' and known[reverses]
        local q, r = tonumber(qty), tonumber(rqty)
        if reversed and select(2, string.gsub(reversed, '|', '')) < 4 then
          r = 0
        end
        if reverses ~= '' and (not reversed or string.sub(reversed, 1, 8) ~= 'APPLIED|') then
          outcome = 'REFUSED|' .. stock .. '|' .. at .. '|reversed_delta_not_applied|' .. reserved
        elseif q < 0 and stock + q < 0 and not backorder then
          outcome = 'REFUSED|' .. stock .. '|' .. at .. '|insufficient_stock|' .. reserved
        else
          stock, reserved = stock + q, reserved + r
          net, netReserved, applied = net + q, netReserved + r, true
          outcome = 'APPLIED|' .. stock .. '|' .. at .. '||' .. reserved
          ledger[#ledger + 1] = id .. '|' .. qty .. '|' .. stock
        end
        known[id] = outcome
        decided[#decided + 1] = id
        decided[#decided + 1] = outcome
        res[#res + 1] = 0
      end
      res[#res + 1] = outcome
    end
    if applied then
      redis.call('INCRBY', KEYS[k], net)
      if netReserved ~= 0 then
        redis.call('INCRBY', KEYS[k + 5], netReserved)
      end
      push('RPUSH', KEYS[k + 2], ledger)
    end
    push('HSET', KEYS[k + 1], decided)
    redis.call('DEL', KEYS[k + 4])
    out[#out + 1] = res
  end
end
return out
