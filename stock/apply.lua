-- Applies a run of one SKU's deltas, in order, each at most once, while the
-- caller holds the SKU's lock, and releases the lock.
-- Every key shares the SKU's hash tag, so this runs on one Redis Cluster slot.
-- KEYS[1] stock      integer; absent means 0
-- KEYS[2] applied    hash delta_id -> outcome; the dedup record and the memory
--                    of what was decided, so a redelivery re-emits the same movement
-- KEYS[3] ledger     list of "delta_id|quantity|stock_after", one per applied delta
-- KEYS[4] backorder  "1" lets this SKU's stock go below zero
-- KEYS[5] lock       the SKU's lock: SET NX PX with a random token, as redislock takes it
-- ARGV[1] the caller's lock token. The run applies only while the lock holds
--         it (fencing): a caller whose lock expired, and whose SKU another
--         holder may have taken since, changes nothing.
-- ARGV[2] applied_at (ms)
-- then three per delta: delta_id, signed quantity, and the delta it
--         reverses or "": a restock gives back only a sale that was
--         applied, never one that was refused
-- Returns {dup, outcome, dup, outcome, ...}, one pair per delta in order:
-- dup is 1 for a delta seen before, 0 for a new one; outcome is
-- "APPLIED|stock_after|applied_at|" or "REFUSED|stock|applied_at|reason".
-- Returns the error LOCKLOST, having changed nothing, when the lock is not held.
if redis.call('GET', KEYS[5]) ~= ARGV[1] then
  return redis.error_reply('LOCKLOST the lock of this SKU expired or is held by another')
end
local backorder = redis.call('GET', KEYS[4]) == '1'
local out = {}
for i = 3, #ARGV, 3 do
  local id, qty, reverses = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local outcome = redis.call('HGET', KEYS[2], id)
  if outcome then
    out[#out + 1] = 1
  else
    local stock = redis.call('GET', KEYS[1]) or '0'
    local reversed = reverses ~= '' and redis.call('HGET', KEYS[2], reverses)
    if reverses ~= '' and (not reversed or string.sub(reversed, 1, 8) ~= 'APPLIED|') then
      outcome = 'REFUSED|' .. stock .. '|' .. ARGV[2] .. '|reversed_delta_not_applied'
    elseif tonumber(qty) < 0 and tonumber(stock) + tonumber(qty) < 0 and not backorder then
      outcome = 'REFUSED|' .. stock .. '|' .. ARGV[2] .. '|insufficient_stock'
    else
      local after = redis.call('INCRBY', KEYS[1], qty)
      outcome = 'APPLIED|' .. after .. '|' .. ARGV[2] .. '|'
      redis.call('RPUSH', KEYS[3], id .. '|' .. qty .. '|' .. after)
    end
    redis.call('HSET', KEYS[2], id, outcome)
    out[#out + 1] = 0
  end
  out[#out + 1] = outcome
end
redis.call('DEL', KEYS[5])
return out
