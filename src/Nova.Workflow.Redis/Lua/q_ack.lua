-- KEYS: the queue's keys (q_record.lua). ARGV: id, token. Removes the job if the token still holds.
return q_ack(1, ARGV[1], ARGV[2])
