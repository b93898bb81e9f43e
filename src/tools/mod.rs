//! Tools that are not the server: the `sealcast package` / `sealcast
//! decrypt` file tools, the `sealcast bench-push` and `bench-play` load
//! generators, and the RTMP publishing client (also used by the integration
//! tests).

pub mod config_check;
pub mod loadgen;
pub mod package;
pub mod publisher;
pub mod viewers;
pub mod wire;
