-- An index of `logs` that no query needs, one more B-tree insert per consume log (the relay's
-- write path): nothing looks logs up by request id (One API's table has no such index).
DROP INDEX idx_logs_request_id ON `logs`;
