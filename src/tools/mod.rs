//! Tools that are not the server: the `sealcast package` / `sealcast
//! decrypt` file tools and the `sealcast bench-push` load generator.

pub mod loadgen;
pub mod package;
