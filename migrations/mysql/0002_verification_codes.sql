-- Email verification and password-reset codes, kept server-side with an expiry (single use).
CREATE TABLE `verification_codes` (
    `id` BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    `purpose` VARCHAR(16) NOT NULL,
    `email` VARCHAR(128) NOT NULL,
    `code` VARCHAR(64) NOT NULL,
    `expires_at` BIGINT NOT NULL DEFAULT 0
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE INDEX idx_verification_codes_email ON `verification_codes` (`purpose`, `email`);
