-- How far each Redis ledger stream has been written back (multi-node quota, docs/multi-node.md).
-- Stream ids are (ms, seq); a batch commits together with the cursor move, so it applies once.
CREATE TABLE `ledger_cursors` (
    `name` VARCHAR(128) NOT NULL PRIMARY KEY,
    `ms` BIGINT NOT NULL DEFAULT 0,
    `seq` BIGINT NOT NULL DEFAULT 0
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
