-- Tollgate schema: One API's tables and columns, plus session_version (forced logout),
-- created_time (users), used_user_id (redemptions), token_id (logs) and weight (abilities).
-- Integers and booleans are BIGINT, times are unix seconds (what sqlx Any carries everywhere).

CREATE TABLE "users" (
    "id" INTEGER PRIMARY KEY AUTOINCREMENT,
    "username" VARCHAR(64) NOT NULL,
    "password" VARCHAR(255) NOT NULL,
    "display_name" VARCHAR(64) NOT NULL DEFAULT '',
    "role" BIGINT NOT NULL DEFAULT 1,
    "status" BIGINT NOT NULL DEFAULT 1,
    "email" VARCHAR(128) NOT NULL DEFAULT '',
    "github_id" VARCHAR(128) NOT NULL DEFAULT '',
    "wechat_id" VARCHAR(128) NOT NULL DEFAULT '',
    "lark_id" VARCHAR(128) NOT NULL DEFAULT '',
    "oidc_id" VARCHAR(128) NOT NULL DEFAULT '',
    "access_token" VARCHAR(64) NULL,
    "quota" BIGINT NOT NULL DEFAULT 0,
    "used_quota" BIGINT NOT NULL DEFAULT 0,
    "request_count" BIGINT NOT NULL DEFAULT 0,
    "group" VARCHAR(64) NOT NULL DEFAULT 'default',
    "aff_code" VARCHAR(32) NULL,
    "inviter_id" BIGINT NOT NULL DEFAULT 0,
    "session_version" BIGINT NOT NULL DEFAULT 0,
    "created_time" BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE "tokens" (
    "id" INTEGER PRIMARY KEY AUTOINCREMENT,
    "user_id" BIGINT NOT NULL DEFAULT 0,
    "key" VARCHAR(64) NOT NULL,
    "status" BIGINT NOT NULL DEFAULT 1,
    "name" VARCHAR(64) NOT NULL DEFAULT '',
    "created_time" BIGINT NOT NULL DEFAULT 0,
    "accessed_time" BIGINT NOT NULL DEFAULT 0,
    "expired_time" BIGINT NOT NULL DEFAULT -1,
    "remain_quota" BIGINT NOT NULL DEFAULT 0,
    "unlimited_quota" BIGINT NOT NULL DEFAULT 0,
    "used_quota" BIGINT NOT NULL DEFAULT 0,
    "models" TEXT NOT NULL DEFAULT '',
    "subnet" VARCHAR(255) NOT NULL DEFAULT ''
);

CREATE TABLE "channels" (
    "id" INTEGER PRIMARY KEY AUTOINCREMENT,
    "type" BIGINT NOT NULL DEFAULT 0,
    "key" TEXT NOT NULL DEFAULT '',
    "status" BIGINT NOT NULL DEFAULT 1,
    "name" VARCHAR(128) NOT NULL DEFAULT '',
    "weight" BIGINT NOT NULL DEFAULT 0,
    "created_time" BIGINT NOT NULL DEFAULT 0,
    "test_time" BIGINT NOT NULL DEFAULT 0,
    "response_time" BIGINT NOT NULL DEFAULT 0,
    "base_url" VARCHAR(255) NOT NULL DEFAULT '',
    "other" TEXT NOT NULL DEFAULT '',
    "balance" REAL NOT NULL DEFAULT 0,
    "balance_updated_time" BIGINT NOT NULL DEFAULT 0,
    "models" TEXT NOT NULL DEFAULT '',
    "group" VARCHAR(255) NOT NULL DEFAULT 'default',
    "used_quota" BIGINT NOT NULL DEFAULT 0,
    "model_mapping" TEXT NOT NULL DEFAULT '',
    "priority" BIGINT NOT NULL DEFAULT 0,
    "config" TEXT NOT NULL DEFAULT '',
    "system_prompt" TEXT NOT NULL DEFAULT ''
);

CREATE TABLE "abilities" (
    "group" VARCHAR(64) NOT NULL,
    "model" VARCHAR(191) NOT NULL,
    "channel_id" BIGINT NOT NULL DEFAULT 0,
    "enabled" BIGINT NOT NULL DEFAULT 1,
    "priority" BIGINT NOT NULL DEFAULT 0,
    "weight" BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY ("group", "model", "channel_id")
);

CREATE TABLE "redemptions" (
    "id" INTEGER PRIMARY KEY AUTOINCREMENT,
    "user_id" BIGINT NOT NULL DEFAULT 0,
    "key" VARCHAR(64) NOT NULL,
    "status" BIGINT NOT NULL DEFAULT 1,
    "name" VARCHAR(64) NOT NULL DEFAULT '',
    "quota" BIGINT NOT NULL DEFAULT 100,
    "created_time" BIGINT NOT NULL DEFAULT 0,
    "redeemed_time" BIGINT NOT NULL DEFAULT 0,
    "used_user_id" BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE "logs" (
    "id" INTEGER PRIMARY KEY AUTOINCREMENT,
    "user_id" BIGINT NOT NULL DEFAULT 0,
    "created_at" BIGINT NOT NULL DEFAULT 0,
    "type" BIGINT NOT NULL DEFAULT 0,
    "content" TEXT NOT NULL DEFAULT '',
    "username" VARCHAR(64) NOT NULL DEFAULT '',
    "token_name" VARCHAR(64) NOT NULL DEFAULT '',
    "token_id" BIGINT NOT NULL DEFAULT 0,
    "model_name" VARCHAR(191) NOT NULL DEFAULT '',
    "quota" BIGINT NOT NULL DEFAULT 0,
    "prompt_tokens" BIGINT NOT NULL DEFAULT 0,
    "completion_tokens" BIGINT NOT NULL DEFAULT 0,
    "channel_id" BIGINT NOT NULL DEFAULT 0,
    "request_id" VARCHAR(64) NOT NULL DEFAULT '',
    "elapsed_time" BIGINT NOT NULL DEFAULT 0,
    "is_stream" BIGINT NOT NULL DEFAULT 0,
    "system_prompt_reset" BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE "options" (
    "key" VARCHAR(191) NOT NULL,
    "value" TEXT NOT NULL DEFAULT '',
    PRIMARY KEY ("key")
);

CREATE UNIQUE INDEX idx_users_username ON "users" ("username");
CREATE UNIQUE INDEX idx_users_access_token ON "users" ("access_token");
CREATE UNIQUE INDEX idx_users_aff_code ON "users" ("aff_code");
CREATE INDEX idx_users_email ON "users" ("email");
CREATE INDEX idx_users_display_name ON "users" ("display_name");
CREATE INDEX idx_users_inviter_id ON "users" ("inviter_id");
CREATE UNIQUE INDEX idx_tokens_key ON "tokens" ("key");
CREATE INDEX idx_tokens_user_id ON "tokens" ("user_id");
CREATE INDEX idx_tokens_name ON "tokens" ("name");
CREATE INDEX idx_channels_name ON "channels" ("name");
CREATE INDEX idx_abilities_channel_id ON "abilities" ("channel_id");
CREATE INDEX idx_abilities_priority ON "abilities" ("priority");
CREATE UNIQUE INDEX idx_redemptions_key ON "redemptions" ("key");
CREATE INDEX idx_redemptions_name ON "redemptions" ("name");
CREATE INDEX idx_logs_user_created ON "logs" ("user_id", "created_at");
CREATE INDEX idx_logs_type_created ON "logs" ("type", "created_at");
CREATE INDEX idx_logs_created_at ON "logs" ("created_at");
CREATE INDEX idx_logs_token_name ON "logs" ("token_name");
CREATE INDEX idx_logs_model_name ON "logs" ("model_name");
CREATE INDEX idx_logs_username_model ON "logs" ("username", "model_name");
CREATE INDEX idx_logs_channel_id ON "logs" ("channel_id");
CREATE INDEX idx_logs_request_id ON "logs" ("request_id");
