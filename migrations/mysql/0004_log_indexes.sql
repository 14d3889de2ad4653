-- Indexes for the log list, search and stat routes on large tables (issue 8; measured with
-- benches/logs on 10 million rows, see docs/benchmarks.md).
--
-- Newest first per user (GET /api/log/self): walk the index backwards, no sort.
CREATE INDEX idx_logs_user_id_id ON `logs` (`user_id`, `id`);
-- Search by token and model, newest first (GET /api/log/?token_name=&model_name=).
CREATE INDEX idx_logs_token_model_id ON `logs` (`token_name`, `model_name`, `id`);
-- Stats: SUM(quota) of consume logs in a time window read from the index alone.
-- Admin (GET /api/log/stat); replaces (type, created_at).
DROP INDEX idx_logs_type_created ON `logs`;
CREATE INDEX idx_logs_type_created_quota ON `logs` (`type`, `created_at`, `quota`);
-- Own stats and the dashboard (GET /api/log/self/stat, /api/user/dashboard).
CREATE INDEX idx_logs_user_type_created_quota ON `logs` (`user_id`, `type`, `created_at`, `quota`);
