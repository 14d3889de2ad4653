//! One integration binary (z2p style): a module per area, a shared `helpers`.

mod helpers;

mod channels;
mod email;
mod foundation;
mod logs;
mod options;
mod rate_limits;
mod redemptions;
mod tokens;
mod users;
