-- Email verification and password-reset codes, kept server-side with an expiry (single use).
CREATE TABLE "verification_codes" (
    "id" INTEGER PRIMARY KEY AUTOINCREMENT,
    "purpose" VARCHAR(16) NOT NULL,
    "email" VARCHAR(128) NOT NULL,
    "code" VARCHAR(64) NOT NULL,
    "expires_at" BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX idx_verification_codes_email ON "verification_codes" ("purpose", "email");
