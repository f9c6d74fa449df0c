-- Applies the runs of one or more SKUs, each run's deltas in order and each
-- delta at most once, while the caller holds each SKU's lock, and releases
-- each lock. One call carries many SKUs because the call itself, not the
-- work in it, was most of what a run of one delta cost Redis.
-- On Redis Cluster the caller puts in one call only SKUs of one hash slot.
-- KEYS, seven per SKU, in the order of its run in ARGV:
--   stock      integer: what can be sold, on hand less reserved; absent means 0
--   applied    hash delta_id -> outcome; the dedup record and the memory
--              of what was decided, so a redelivery re-emits the same movement
--   ledger     list of "delta_id|quantity|stock_after", one per applied delta
--   backorder  "1" lets this SKU's stock go below zero
--   lock       the SKU's lock: SET NX PX with a random token, as redislock takes it
--   reserved   integer: units paid orders hold until they ship; absent means 0
--   watermark  "partition:offset": the delta log position of the last delta
--              decided; a delta at or before it in the same partition whose
--              id applied is no longer remembers (pruned after the horizon)
--              was decided before, and passes without changing anything
-- ARGV[1] applied_at (ms)
-- then per SKU: the caller's lock token for it, its number of deltas n, and
--   five per delta: delta_id, the signed change of stock, the signed
--   change of reserved, the delta it reverses or "", and its position
--   "partition:offset" in the delta log or "": a release or a commit takes
--   back only a sale that was applied, never one that was refused, and a
--   restock only a commit that was applied.
-- A sale recorded before reservations existed ("APPLIED|stock|at|", four
-- fields) reserved nothing: what reverses it changes no reserved units.
-- A SKU's run applies only while its lock holds the caller's token
-- (fencing): a caller whose lock expired, and whose SKU another holder may
-- have taken since, changes nothing of that SKU.
-- Returns one element per SKU: the string LOCKLOST when its lock was not
-- held (nothing of it changed), else {dup, outcome, dup, outcome, ...}, one
-- pair per delta in order: dup is 1 for a delta seen before, 0 for a new
-- one; outcome is "APPLIED|stock_after|applied_at||reserved_after",
-- "REFUSED|stock|applied_at|reason|reserved", or, for a delta before the
-- watermark that is remembered no more, "PASSED|stock|applied_at||reserved".

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

-- position splits "partition:offset".
local function position(p)
  local part, off = string.match(p, '^(%d+):(%d+)$')
  return part, tonumber(off)
end

local at = ARGV[1]
local out = {}
local a = 2
for k = 1, #KEYS, 7 do
  local token, first = ARGV[a], a + 2
  a = first + 5 * tonumber(ARGV[a + 1])
  local cur = redis.call('MGET', KEYS[k + 4], KEYS[k + 3], KEYS[k], KEYS[k + 5], KEYS[k + 6])
  if cur[1] ~= token then
    out[#out + 1] = 'LOCKLOST'
  else
    local backorder = cur[2] == '1'
    local stock = tonumber(cur[3] or '0')
    local reserved = tonumber(cur[4] or '0')
    local wmPart, wmOff, last = nil, nil, nil
    if cur[5] then
      wmPart, wmOff = position(cur[5])
    end
    local fields = {}
    for i = first, a - 1, 5 do
      fields[#fields + 1] = ARGV[i]
      if ARGV[i + 3] ~= '' then
        fields[#fields + 1] = ARGV[i + 3]
      end
    end
    -- known holds every outcome this run can read, as stored before it and
    -- as decided by it, so a delta sees the ones before it in the run.
    local known = {}
    hmget(KEYS[k + 1], fields, known)
    local res, decided, ledger, netReserved, applied = {}, {}, {}, 0, false
    for i = first, a - 1, 5 do
      local id, qty, rqty, reverses, pos = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
      local outcome = known[id]
      local part, off
      if pos ~= '' then
        part, off = position(pos)
        last = pos
      end
      if outcome then
        res[#res + 1] = 1
      elseif part and part == wmPart and off <= wmOff then
        outcome = 'PASSED|' .. stock .. '|' .. at .. '||' .. reserved
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
          netReserved, applied = netReserved + r, true
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
    -- Redis keeps what a failed script wrote, so what can fail (a key of
    -- the wrong type) goes first and the stock last: a SKU is then either
    -- whole or unchanged, where a stock changed before its outcomes were
    -- recorded would be changed again by the retry. final gathers the
    -- stock, reserved units and watermark for that last write, one MSET.
    local final = {}
    if applied then
      push('RPUSH', KEYS[k + 2], ledger)
      final[1], final[2] = KEYS[k], stock
      if netReserved ~= 0 then
        final[3], final[4] = KEYS[k + 5], reserved
      end
    end
    push('HSET', KEYS[k + 1], decided)
    if last then
      local part, off = position(last)
      if part ~= wmPart or off > wmOff then
        final[#final + 1] = KEYS[k + 6]
        final[#final + 1] = last
      end
    end
    if #final > 0 then
      redis.call('MSET', unpack(final))
    end
    redis.call('DEL', KEYS[k + 4])
    out[#out + 1] = res
  end
end
return out
