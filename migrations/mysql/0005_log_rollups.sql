-- Consume-log rollups for the stat routes (issue 8; docs/benchmarks.md, "The log rollup").
-- Written by the ledger writer in the same transaction as the consume logs they sum, and kept
-- exact by log deletion (src/store/log_rollups.rs). Three grains:
--   grain 1: per UTC hour, all consume logs (model_name '' and channel_id 0);
--   grain 2: per UTC hour, model and channel;
--   grain 3: per UTC day, model and channel.
CREATE TABLE `log_rollups` (
    `grain` BIGINT NOT NULL,
    `bucket` BIGINT NOT NULL,
    `model_name` VARCHAR(191) NOT NULL DEFAULT '',
    `channel_id` BIGINT NOT NULL DEFAULT 0,
    `quota` BIGINT NOT NULL DEFAULT 0,
    `prompt_tokens` BIGINT NOT NULL DEFAULT 0,
    `completion_tokens` BIGINT NOT NULL DEFAULT 0,
    `request_count` BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (`grain`, `bucket`, `model_name`, `channel_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE INDEX idx_log_rollups_model ON `log_rollups` (`grain`, `model_name`, `channel_id`, `bucket`);
CREATE INDEX idx_log_rollups_channel ON `log_rollups` (`grain`, `channel_id`, `bucket`);
-- Backfill from the logs already there (an upgraded database).
INSERT INTO `log_rollups` (`grain`, `bucket`, `model_name`, `channel_id`, `quota`, `prompt_tokens`, `completion_tokens`, `request_count`)
SELECT 1, `created_at` - `created_at` % 3600, '', 0, SUM(`quota`), SUM(`prompt_tokens`), SUM(`completion_tokens`), COUNT(*)
FROM `logs` WHERE `type` = 2 GROUP BY `created_at` - `created_at` % 3600;
INSERT INTO `log_rollups` (`grain`, `bucket`, `model_name`, `channel_id`, `quota`, `prompt_tokens`, `completion_tokens`, `request_count`)
SELECT 2, `created_at` - `created_at` % 3600, `model_name`, `channel_id`, SUM(`quota`), SUM(`prompt_tokens`), SUM(`completion_tokens`), COUNT(*)
FROM `logs` WHERE `type` = 2 GROUP BY `created_at` - `created_at` % 3600, `model_name`, `channel_id`;
INSERT INTO `log_rollups` (`grain`, `bucket`, `model_name`, `channel_id`, `quota`, `prompt_tokens`, `completion_tokens`, `request_count`)
SELECT 3, `created_at` - `created_at` % 86400, `model_name`, `channel_id`, SUM(`quota`), SUM(`prompt_tokens`), SUM(`completion_tokens`), COUNT(*)
FROM `logs` WHERE `type` = 2 GROUP BY `created_at` - `created_at` % 86400, `model_name`, `channel_id`;
