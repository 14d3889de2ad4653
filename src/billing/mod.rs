//! Billing: ratios, pure quota arithmetic, and the ledger that reserves and settles quota.
//!
//! `ratio` and `quota` are pure (no I/O, integer quota, rounding rules in `quota`'s header);
//! `ledger` is the only place that moves quota, through `store::ledger`.

pub mod ledger;
pub mod quota;
pub mod ratio;
