//! The `sealcast` command line: parses arguments, sets up logging, and calls
//! into the library.

// The command line talks to its user on stdout and stderr (banners, tokens,
// reports); logs go through tracing.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sealcast::auth::{self, Claims};
use sealcast::clock::UtcDateTime;
use sealcast::clock::now_unix_secs;
use sealcast::config::{AwsKmsConfig, Config, KeyOrigin, KmsConfig};
use sealcast::keyservice::KeyServer;
use sealcast::kms::local::LocalKms;
use sealcast::names::StreamName;
use sealcast::server::{self, Server};
use sealcast::tools::loadgen;
use sealcast::tools::package::{self, PackageOptions};

#[derive(Parser)]
#[command(
    name = "sealcast",
    version,
    about = "Live RTMP to AES-128 encrypted HLS, with KMS envelope keys"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines as human-readable text, or one JSON object per line.
    #[arg(long, global = true, value_enum, default_value_t = sealcast::logging::LogFormat::Text)]
    log_format: sealcast::logging::LogFormat,
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
    /// Run the live server: RTMP ingest, encrypted HLS and the key endpoint.
    Serve {
        /// TOML configuration; without it the embedded defaults run.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Run only the key endpoint (and /healthz): no ingest, no data dir writes.
    /// Needs the KMS (an existing keyring), the token secret, and the replay store.
    Keyserver {
        /// TOML configuration ([http] listen, [kms], [auth]).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print a playback token for a stream (signed with the configured secret).
    Token {
        /// `app/name`, `app/*` (every stream of an app) or `*` (every stream).
        #[arg(long, value_parser = parse_stream_pattern)]
        stream: String,
        #[arg(long, default_value_t = 3600)]
        ttl_secs: u64,
        /// Optional viewer id (`sub` claim).
        #[arg(long)]
        sub: Option<String>,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Key management: master key rotation and versions of the local keyring.
    Kms {
        #[command(subcommand)]
        command: KmsCommand,
    },
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Load test: N concurrent RTMP publishers replaying an FLV file in real
    /// time, looping with continuous timestamps; reports once a second.
    BenchPush(BenchPushArgs),
    /// Decrypt a sealcast playlist into one plaintext TS file (operators and tests).
    Decrypt {
        playlist: PathBuf,
        output: PathBuf,
        #[arg(long, default_value = "sealcast-data/keyring.json")]
        keyring: PathBuf,
    },
}

#[derive(Subcommand)]
enum KmsCommand {
    /// Add a master key version to the local keyring. New data keys are wrapped
    /// under it once the server (re)starts; keys wrapped under older versions
    /// still unwrap.
    Rotate {
        #[command(flatten)]
        keyring: KeyringArgs,
    },
    /// Show the key provider; for the local keyring, its master key versions
    /// and creation times (never key bytes).
    Info {
        #[command(flatten)]
        keyring: KeyringArgs,
    },
}

/// Which keyring: given directly, or the one a config file names.
#[derive(clap::Args)]
#[group(multiple = false)]
struct KeyringArgs {
    /// The keyring file.
    #[arg(long)]
    keyring: Option<PathBuf>,
    /// The configuration whose [kms] section names the keyring (without
    /// either option: the embedded defaults, sealcast-data/keyring.json).
    #[arg(long)]
    config: Option<PathBuf>,
}

/// The keyring path to work on, or `Err(aws)` when the configuration uses
/// AWS KMS.
fn keyring_path(args: &KeyringArgs) -> anyhow::Result<Result<PathBuf, AwsKmsConfig>> {
    if let Some(path) = &args.keyring {
        return Ok(Ok(path.clone()));
    }
    let config = load_config(args.config.as_deref())?;
    Ok(match config.kms {
        KmsConfig::Local { keyring } => Ok(keyring),
        KmsConfig::Aws(aws) => Err(aws),
    })
}

fn require_keyring(path: &Path) -> anyhow::Result<()> {
    if !path.exists() {
        anyhow::bail!(
            "no keyring at {} (`sealcast serve` creates it on first start; --keyring or --config names another)",
            path.display()
        );
    }
    Ok(())
}

fn kms_command(command: KmsCommand) -> anyhow::Result<()> {
    match command {
        KmsCommand::Rotate { keyring } => {
            let path = keyring_path(&keyring)?.map_err(|_| {
                anyhow::anyhow!(
                    "kms.provider is \"aws\": rotate the KMS key in AWS (automatic rotation, or \
                     `aws kms rotate-key-on-demand`); sealcast rotates only the local keyring"
                )
            })?;
            require_keyring(&path)?;
            let version = LocalKms::rotate(&path)?;
            println!(
                "keyring {}: added master key version {version}; new data keys use it once sealcast \
                 restarts, and keys wrapped under older versions still unwrap",
                path.display()
            );
        }
        KmsCommand::Info { keyring } => match keyring_path(&keyring)? {
            Ok(path) => {
                require_keyring(&path)?;
                let kms = LocalKms::open(&path)?;
                println!("provider local, keyring {}", path.display());
                println!("version  created (UTC)");
                let current = kms.current_version();
                for (version, created) in kms.versions() {
                    let created_utc = created
                        .parse::<i64>()
                        .ok()
                        .and_then(|secs| secs.checked_mul(1000))
                        .and_then(UtcDateTime::from_unix_ms)
                        .map_or_else(|| format!("unix {created}"), |t| t.to_string());
                    let note = if version == current {
                        "  (current: wraps new data keys)"
                    } else {
                        ""
                    };
                    println!("{version:<8} {created_utc}{note}");
                }
            }
            Err(aws) => {
                println!("provider aws");
                println!("key_id   {}", aws.key_id);
                println!(
                    "region   {}",
                    aws.region
                        .as_deref()
                        .unwrap_or("(from AWS_REGION / AWS_DEFAULT_REGION)")
                );
                println!(
                    "endpoint {}",
                    aws.endpoint
                        .as_deref()
                        .unwrap_or("(https://kms.<region>.amazonaws.com)")
                );
                println!("master key versions are kept by AWS KMS");
            }
        },
    }
    Ok(())
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Check a configuration file; prints every problem and exits non-zero if any.
    Check { file: PathBuf },
}

fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    match path {
        Some(path) => Config::load(path).map_err(|e| anyhow::anyhow!("{}:\n{e}", path.display())),
        None => Ok(Config::default()),
    }
}

fn parse_stream_pattern(s: &str) -> Result<String, String> {
    if auth::valid_stream_pattern(s) {
        Ok(s.to_owned())
    } else {
        Err("expected app/name, app/* or * (a * matches whole names only)".to_owned())
    }
}

fn parse_stream_name(s: &str) -> Result<StreamName, String> {
    StreamName::parse(s).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    sealcast::logging::init(cli.log_format);
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
        Command::Package {
            input,
            outdir,
            segment_duration_secs,
            segments_per_key,
            keyring,
            name,
            key_uri_base,
        } => {
            let kms = LocalKms::open_or_create(&keyring)?;
            let options = PackageOptions {
                stream: name,
                segment_duration_secs,
                segments_per_key,
                key_uri_base,
            };
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
        Command::Serve { config } => serve(&runtime, config.as_deref())?,
        Command::Keyserver { config } => keyserver(&runtime, config.as_deref())?,
        Command::Token {
            stream,
            ttl_secs,
            sub,
            config,
        } => {
            let config = load_config(config.as_deref())?;
            let secret = config.resolve_token_secret()?;
            let claims = Claims {
                exp: now_unix_secs() + ttl_secs,
                stream,
                sub,
                jti: None,
            };
            println!(
                "{}",
                auth::mint_with_audience(&secret, &claims, config.auth.audience.as_deref())
            );
        }
        Command::Kms { command } => kms_command(command)?,
        Command::Config {
            command: ConfigCommand::Check { file },
        } => {
            let config = load_config(Some(&file))?;
            println!("{}: ok ({} streams)", file.display(), config.streams.len());
        }
        Command::BenchPush(args) => bench_push(&runtime, args)?,
        Command::Decrypt {
            playlist,
            output,
            keyring,
        } => {
            let kms = LocalKms::open_or_create(&keyring)?;
            let segments = runtime.block_on(package::decrypt(&playlist, &output, &kms))?;
            println!("decrypted {segments} segments into {}", output.display());
        }
    }
    Ok(())
}

/// `sealcast serve`: RTMP and HTTP until SIGINT or SIGTERM.
fn serve(runtime: &tokio::runtime::Runtime, config_path: Option<&Path>) -> anyhow::Result<()> {
    let config = load_config(config_path)?;
    raise_open_file_limit();
    let server = Server::from_config(&config)?;
    runtime.block_on(async {
        let rtmp = tokio::net::TcpListener::bind(config.rtmp.listen)
            .await
            .with_context(|| format!("binding RTMP to {}", config.rtmp.listen))?;
        let http = tokio::net::TcpListener::bind(config.http.listen)
            .await
            .with_context(|| format!("binding HTTP to {}", config.http.listen))?;
        let metrics = bind_metrics(&config).await?;
        let shutdown = server::shutdown_signal().context("installing signal handlers")?;
        print_banner(&config, config_path, &server, rtmp.local_addr()?, http.local_addr()?);
        server.run_with_metrics(rtmp, http, metrics, shutdown).await?;
        anyhow::Ok(())
    })
}

/// Raises the soft open-file limit to the hard one and logs both: the HTTP
/// connection cap is sized from the result.
fn raise_open_file_limit() {
    let show = |limit: Option<u64>| limit.map_or_else(|| "unlimited".to_owned(), |n| n.to_string());
    match sealcast::fd_limit::raise() {
        (before, Ok(after)) => tracing::info!(
            soft_before = %show(before.soft),
            soft = %show(after.soft),
            hard = %show(after.hard),
            "open-file limit"
        ),
        (before, Err(error)) => tracing::warn!(
            soft = %show(before.soft),
            hard = %show(before.hard),
            %error,
            "could not raise the open-file limit"
        ),
    }
}

/// The `[metrics] listen` listener, unless metrics are off. An address that
/// cannot be bound is logged and the server runs without `/metrics`:
/// ingest and playback do not depend on it.
async fn bind_metrics(config: &sealcast::config::Config) -> anyhow::Result<Option<tokio::net::TcpListener>> {
    if !config.metrics.enabled {
        return Ok(None);
    }
    match tokio::net::TcpListener::bind(config.metrics.listen).await {
        Ok(listener) => Ok(Some(listener)),
        Err(error) => {
            tracing::error!(addr = %config.metrics.listen, %error, "cannot bind metrics.listen; serving without /metrics");
            Ok(None)
        }
    }
}

/// `sealcast keyserver`: the key endpoint alone, until SIGINT or SIGTERM.
fn keyserver(runtime: &tokio::runtime::Runtime, config_path: Option<&Path>) -> anyhow::Result<()> {
    let config = load_config(config_path)?;
    raise_open_file_limit();
    let server = KeyServer::from_config(&config)?;
    runtime.block_on(async {
        let http = tokio::net::TcpListener::bind(config.http.listen)
            .await
            .with_context(|| format!("binding HTTP to {}", config.http.listen))?;
        let metrics = bind_metrics(&config).await?;
        let shutdown = server::shutdown_signal().context("installing signal handlers")?;
        // One line on stdout, for people and for scripts that start it on port 0.
        println!("sealcast keyserver listening on http://{}", http.local_addr()?);
        std::io::Write::flush(&mut std::io::stdout())?;
        server.run_with_metrics(http, metrics, shutdown).await?;
        anyhow::Ok(())
    })
}

/// `sealcast bench-push`: many real-time RTMP publishers in one process.
#[derive(clap::Args)]
struct BenchPushArgs {
    /// rtmp://host[:port]/app
    #[arg(long, default_value = "rtmp://127.0.0.1:1935/live")]
    url: String,
    /// FLV file to replay (read once, shared by every publisher).
    #[arg(long)]
    fixture: PathBuf,
    /// Number of publishers (default: one per line of --keys-file).
    #[arg(long, short = 'n')]
    publishers: Option<usize>,
    /// Stream key per publisher; `{i}` is replaced by its index.
    #[arg(long, default_value = "sealcast_bench_{i}", conflicts_with = "keys_file")]
    key_template: String,
    /// First index substituted for `{i}`.
    #[arg(long, default_value_t = 0)]
    first_index: usize,
    /// File of stream keys, one per line.
    #[arg(long)]
    keys_file: Option<PathBuf>,
    /// Run time; 0: until Ctrl-C.
    #[arg(long, default_value_t = 60)]
    duration_secs: u64,
    /// Send loop period: every tag due in a tick goes out in one write.
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u64).range(5..=500))]
    tick_ms: u64,
    /// Publishers start evenly spread over this time.
    #[arg(long, default_value_t = 2000)]
    ramp_ms: u64,
}

fn bench_push(runtime: &tokio::runtime::Runtime, args: BenchPushArgs) -> anyhow::Result<()> {
    use std::time::Duration;

    let (addr, app) = loadgen::parse_url(&args.url)?;
    let keys = match &args.keys_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            let mut keys: Vec<String> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect();
            if let Some(n) = args.publishers {
                anyhow::ensure!(
                    n <= keys.len(),
                    "{} has {} keys, fewer than {n}",
                    path.display(),
                    keys.len()
                );
                keys.truncate(n);
            }
            keys
        }
        None => loadgen::keys_from_template(&args.key_template, args.first_index, args.publishers.unwrap_or(1)),
    };
    anyhow::ensure!(!keys.is_empty(), "no publishers");
    let fixture = std::sync::Arc::new(loadgen::Fixture::load(&args.fixture)?);
    let publishers = keys.len();
    println!(
        "bench-push: {publishers} publishers to {}, fixture {} ({:.1} s loop, {:.2} Mb/s each)",
        args.url,
        args.fixture.display(),
        fixture.duration_ms() as f64 / 1000.0,
        fixture.bitrate_bps() as f64 / 1e6
    );
    let options = loadgen::Options {
        addr,
        app,
        tc_url: args.url.clone(),
        keys,
        duration: Duration::from_secs(args.duration_secs),
        tick: Duration::from_millis(args.tick_ms),
        ramp: Duration::from_millis(args.ramp_ms),
    };
    let cpu_start = loadgen::process_cpu_time();
    let wall_start = std::time::Instant::now();
    let mut last = (Duration::ZERO, 0u64);
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let stats = runtime.block_on(loadgen::run(fixture, options, stop, |elapsed, s| {
        let rate = (s.bytes_sent - last.1) as f64 * 8.0 / (elapsed - last.0).as_secs_f64().max(1e-3) / 1e6;
        last = (elapsed, s.bytes_sent);
        println!(
            "t={:>4}s connected={}/{publishers} failed={} behind={} behind_ever={} max_lag_ms={} sent_mb={:.1} rate_mbps={rate:.1}",
            elapsed.as_secs(),
            s.connected,
            s.failed,
            s.behind,
            s.behind_ever,
            s.max_lag_ms,
            s.bytes_sent as f64 / 1e6
        );
        let _ = std::io::Write::flush(&mut std::io::stdout());
    }));
    let wall = wall_start.elapsed();
    let s = stats.snapshot();
    let cpu = match (cpu_start, loadgen::process_cpu_time()) {
        (Some(a), Some(b)) => format!(
            "{:.2} s ({:.1}% of one core)",
            (b - a).as_secs_f64(),
            (b - a).as_secs_f64() * 100.0 / wall.as_secs_f64()
        ),
        _ => "unknown".to_owned(),
    };
    println!(
        "bench-push done: publishers={publishers} failed={} behind_ever={} max_lag_ms={} sent_bytes={} avg_rate_mbps={:.1} cpu={cpu}",
        s.failed,
        s.behind_ever,
        s.max_lag_ms,
        s.bytes_sent,
        s.bytes_sent as f64 * 8.0 / wall.as_secs_f64() / 1e6
    );
    for error in stats.errors() {
        println!("  error: {error}");
    }
    Ok(())
}

/// What a person needs after start: OBS settings, a playable URL, how to mint tokens.
fn print_banner(
    config: &Config,
    config_path: Option<&Path>,
    server: &Server,
    rtmp: std::net::SocketAddr,
    http: std::net::SocketAddr,
) {
    let base = match config.http.public_base() {
        "" => format!("http://{http}"),
        base => base.to_owned(),
    };
    println!("sealcast is running: RTMP on {rtmp}, HTTP on {http}");
    for stream in server.streams() {
        let key = match &stream.key_origin {
            KeyOrigin::Generated(path) => {
                format!(
                    "{} (generated, kept in {})",
                    stream.publish_key.expose_str().unwrap_or("?"),
                    path.display()
                )
            }
            KeyOrigin::Inline => "(as in the config file)".to_owned(),
            KeyOrigin::Env(var) => format!("(from ${var})"),
            KeyOrigin::File(path) => format!("(from {})", path.display()),
        };
        let token = server.key_service().mint_token(&Claims {
            exp: now_unix_secs() + 24 * 3600,
            stream: stream.path(),
            sub: None,
            jti: None,
        });
        println!();
        println!("stream {}", stream.path());
        println!("  OBS: Settings > Stream > Service: Custom");
        println!("       Server:     rtmp://{rtmp}/{}", stream.app);
        println!("       Stream Key: {key}");
        println!("       (Settings > Output > Keyframe Interval: 2 s)");
        println!("  watch in a browser (token valid 24 h):");
        println!("       {base}/watch/{}/{}?token={token}", stream.app, stream.name);
        println!("  play (token valid 24 h):");
        println!(
            "       ffplay '{base}/{}/{}/index.m3u8?token={token}'",
            stream.app, stream.name
        );
    }
    let config_arg = config_path
        .map(|p| format!(" --config {}", p.display()))
        .unwrap_or_default();
    println!();
    println!("more tokens: sealcast token --stream APP/NAME --ttl-secs 3600{config_arg}");
}
