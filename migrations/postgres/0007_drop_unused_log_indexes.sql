-- Two indexes of `logs` that no query needs, each one more B-tree insert per consume log (the
-- relay's write path; 13 per log before this):
-- - (request_id): nothing looks logs up by request id (One API's table has no such index);
-- - (token_name), here only: a PostgreSQL index orders equal keys by their place in the table,
--   not by id, so (token_name, model_name, id) of 0004 serves every search by token as well.
--   SQLite and MySQL keep it: their index carries the id, and walks a token's logs newest first.
-- 300,000 log inserts with the other indexes took 4.4 s against 5.1 s with these two.
DROP INDEX idx_logs_request_id;
DROP INDEX idx_logs_token_name;
