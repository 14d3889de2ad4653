//! Shared state across nodes. With `REDIS_CONN_STRING`, quota balances live in Redis and move
//! through Lua scripts that can never take a balance below zero; caches are invalidated on every
//! node through pub/sub. See docs/multi-node.md.

pub mod memory;
pub mod redis;
pub mod rows;
