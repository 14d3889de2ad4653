-- The admin stat filtered by username (GET /api/log/stat?username=) from the index alone: the
-- rollup does not keep users, and (username, model_name) made it read every log of the user
-- from the table (73 ms p50, 150 ms max on 10 million rows; docs/benchmarks.md).
CREATE INDEX idx_logs_username_type_created_quota ON `logs` (`username`, `type`, `created_at`, `quota`);
