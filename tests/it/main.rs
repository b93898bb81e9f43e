//! sealcast's integration tests: one crate, one module per area, with the
//! helpers they share in [`support`] (the in-process server harness, the RTMP
//! publishing client, HTTP, the playlist poller, child-process guards, the
//! KMS test services).
//!
//! The tests start the real server on 127.0.0.1:0 ports (in process, or the
//! `sealcast` binary as a child), publish over real RTMP, fetch over real
//! HTTP, and judge the output with real clients (ffmpeg, ffprobe, Chromium,
//! PyJWT) and services (Redis, moto); `scripts/test.sh` installs them. A
//! missing tool fails the tests that need it.

// Test code: an unwrap that fails is a test that fails, with its cause.
#![allow(clippy::unwrap_used)]

mod support;

mod access_log;
mod admin_api;
mod aws_credentials;
mod bench_tools;
mod browser;
mod cluster_demo;
mod cluster_leases;
mod cluster_sentinel;
mod dvr;
mod e2e_ffmpeg;
mod edge;
mod http_starvation;
mod key_service;
mod kms_aws;
mod kms_lifecycle;
mod live_server;
mod logging;
mod metrics;
mod offline;
mod package;
mod package_inputs;
mod package_s3;
mod protected;
mod publish_hook;
mod publisher_logs;
mod pyjwt_interop;
mod readiness;
mod recordings;
mod reload;
mod robustness;
mod rtmp_hostile;
mod rtmp_ingest;
mod s3_faults;
mod s3_storage;
mod security;
mod tls;
mod tools_cli;
mod web;
mod webhooks;
