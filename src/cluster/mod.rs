//! Cluster mode (`[cluster]`): several ingest nodes sharing one Redis. Each
//! publish holds its stream's lease there, so one publisher per stream runs
//! in the whole cluster; see `docs/cluster.md` for the policy.
//!
//! - [`lease`]: the sans-IO rules (value format, renewal and write deadline).
//! - [`leases`]: the Lua scripts and the keeper task, over [`redis`].
//! - [`redis`]: the Redis connection shared with the ticket replay store.

pub mod lease;
pub mod leases;
pub mod redis;

pub use leases::{Acquired, Leases};
