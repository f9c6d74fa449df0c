-- Applies one inventory delta to one SKU, at most once.
-- Every key shares the SKU's hash tag, so this runs on one Redis Cluster slot.
-- KEYS[1] stock      integer; absent means 0
-- KEYS[2] applied    hash delta_id -> outcome; the dedup record and the memory
--                    of what was decided, so a redelivery re-emits the same movement
-- KEYS[3] ledger     list of "delta_id|quantity|stock_after", one per applied delta
-- KEYS[4] backorder  "1" lets this SKU's stock go below zero
-- ARGV[1] delta_id  ARGV[2] signed quantity  ARGV[3] applied_at (ms)
-- ARGV[4] the delta this one reverses, or "": a restock gives back only a
--         sale that was applied, never one that was refused
-- Returns {1, outcome} for a delta seen before, {0, outcome} for a new one;
-- outcome is "APPLIED|stock_after|applied_at|" or "REFUSED|stock|applied_at|reason".
local prev = redis.call('HGET', KEYS[2], ARGV[1])
if prev then
  return {1, prev}
end
local stock = redis.call('GET', KEYS[1]) or '0'
local outcome
local reversed = ARGV[4] ~= '' and redis.call('HGET', KEYS[2], ARGV[4])
if ARGV[4] ~= '' and (not reversed or string.sub(reversed, 1, 8) ~= 'APPLIED|') then
  outcome = 'REFUSED|' .. stock .. '|' .. ARGV[3] .. '|reversed_delta_not_applied'
elseif tonumber(ARGV[2]) < 0 and tonumber(stock) + tonumber(ARGV[2]) < 0
   and redis.call('GET', KEYS[4]) ~= '1' then
  outcome = 'REFUSED|' .. stock .. '|' .. ARGV[3] .. '|insufficient_stock'
else
  local after = redis.call('INCRBY', KEYS[1], ARGV[2])
  outcome = 'APPLIED|' .. after .. '|' .. ARGV[3] .. '|'
  redis.call('RPUSH', KEYS[3], ARGV[1] .. '|' .. ARGV[2] .. '|' .. after)
end
redis.call('HSET', KEYS[2], ARGV[1], outcome)
return {0, outcome}
