//! The `sealcast` command line: parses arguments, sets up logging, and calls
//! into the library.

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sealcast::kms::local::LocalKms;
use sealcast::names::StreamName;
use sealcast::package::{self, PackageOptions};

#[derive(Parser)]
#[command(name = "sealcast", version, about = "Live RTMP to AES-128 encrypted HLS, with KMS envelope keys")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Package an FLV file into encrypted HLS VOD: OUTDIR/index.m3u8 and .ts segments.
    Package {
        input: PathBuf,
        outdir: PathBuf,
        /// Target segment duration; segments are cut at the first keyframe after it.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=60))]
        segment_duration_secs: u32,
        /// Segments encrypted under one data key (1: every segment its own key).
        #[arg(long, default_value = "1")]
        segments_per_key: NonZeroU32,
        /// Local KMS keyring (created with mode 0600 if missing).
        #[arg(long, default_value = "sealcast-data/keyring.json")]
        keyring: PathBuf,
        /// Stream name the keys are bound to, and key URIs name.
        #[arg(long, default_value = "vod/default", value_parser = parse_stream_name)]
        name: StreamName,
        /// Prefix for key URIs, e.g. https://keys.example.com (default: root-relative /keys/...).
        #[arg(long, default_value = "")]
        key_uri_base: String,
    },
    /// Decrypt a sealcast playlist into one plaintext TS file (operators and tests).
    Decrypt {
        playlist: PathBuf,
        output: PathBuf,
        #[arg(long, default_value = "sealcast-data/keyring.json")]
        keyring: PathBuf,
    },
}

fn parse_stream_name(s: &str) -> Result<StreamName, String> {
    StreamName::parse(s).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    match cli.command {
        Command::Package { input, outdir, segment_duration_secs, segments_per_key, keyring, name, key_uri_base } => {
            let kms = LocalKms::open_or_create(&keyring)?;
            let options = PackageOptions { stream: name, segment_duration_secs, segments_per_key, key_uri_base };
            let report = runtime.block_on(package::package(&input, &outdir, &options, &kms))?;
            println!(
                "packaged {} into {}: {} segments, {} keys, {} video and {} audio frames, {} tags skipped",
                input.display(),
                outdir.join("index.m3u8").display(),
                report.segments,
                report.keys,
                report.video_frames,
                report.audio_frames,
                report.skipped_tags
            );
        }
        Command::Decrypt { playlist, output, keyring } => {
            let kms = LocalKms::open_or_create(&keyring)?;
            let segments = runtime.block_on(package::decrypt(&playlist, &output, &kms))?;
            println!("decrypted {segments} segments into {}", output.display());
        }
    }
    Ok(())
}
