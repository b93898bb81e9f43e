//! Tools that are not the server: the `sealcast package` / `sealcast
//! decrypt` file tools, the `sealcast bench-push` load generator, and the
//! RTMP publishing client it (and the integration tests) publish with.

pub mod config_check;
pub mod loadgen;
pub mod package;
pub mod publisher;
