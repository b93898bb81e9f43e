//! The `sealcast` command line: parses arguments, sets up logging, and calls
//! into the library.

// The command line talks to its user on stdout and stderr (banners, tokens,
// reports); logs go through tracing.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sealcast::auth::{self, Claims};
use sealcast::clock::now_unix_secs;
use sealcast::config::{Config, KeyOrigin};
use sealcast::keyservice::KeyServer;
use sealcast::logging::LogControl;
use sealcast::names::StreamName;
use sealcast::reload;
use sealcast::server::{self, Server};
use sealcast::tools::package::{self, PackageOptions};

mod bench_commands;
mod kms_commands;
use bench_commands::{BenchPlayArgs, BenchPushArgs, bench_play, bench_push};
use kms_commands::{KeyringArgs, KmsCommand, kms_command, open_tool_keyring};

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
    /// Package an FLV, MP4 or MPEG-TS file (H.264 + AAC) into encrypted HLS VOD: OUTDIR/index.m3u8 and .ts segments.
    Package {
        input: PathBuf,
        /// A directory, or s3://BUCKET/PREFIX/ (endpoint, region and profile
        /// from --config's [storage.s3]; credentials from the AWS chain).
        outdir: String,
        /// Target segment duration; segments are cut at the first keyframe after it.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=60))]
        segment_duration_secs: u32,
        /// Segments encrypted under one data key (1: every segment its own key).
        #[arg(long, default_value = "1")]
        segments_per_key: NonZeroU32,
        #[command(flatten)]
        keyring: KeyringArgs,
        /// Create the keyring (mode 0600) if it does not exist yet, instead of
        /// refusing; key servers must then be given the same keyring.
        #[arg(long)]
        new_keyring: bool,
        /// Remove an earlier package (index.m3u8 and segments) from OUTDIR
        /// first; without it a non-empty OUTDIR is refused.
        #[arg(long)]
        replace: bool,
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
    /// Run a stateless viewer-facing edge: playlists personalized per viewer
    /// from the canonical ones in storage, segments from storage, the key
    /// endpoint, /healthz. Any number behind any load balancer.
    Edge {
        /// TOML configuration ([storage] as the ingest nodes', [http], [kms], [auth]).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print a playback token for a stream (signed with the configured secret).
    Token {
        /// `app/name`, `app/*` (every stream of an app) or `*` (every stream).
        #[arg(long, value_parser = parse_stream_pattern)]
        stream: String,
        /// Lifetime in seconds (at least 1).
        #[arg(long, default_value_t = sealcast::config::DEFAULT_TOKEN_TTL_SECS,
              value_parser = clap::value_parser!(u64).range(1..))]
        ttl_secs: u64,
        /// Mint for a stream the configuration does not list (streams that
        /// another server's configuration or a publish hook admits).
        #[arg(long)]
        unlisted: bool,
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
    /// Load test: N simulated HLS viewers polling live playlists as hls.js
    /// does, fetching each new segment and its key; reports per request type.
    BenchPlay(BenchPlayArgs),
    /// Decrypt a sealcast playlist into one plaintext TS file (operators and tests).
    Decrypt {
        playlist: PathBuf,
        output: PathBuf,
        /// The keyring the playlist's keys were wrapped with.
        #[command(flatten)]
        keyring: KeyringArgs,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Check a configuration file as `serve` (or `keyserver`) would at start:
    /// parsing, values, every secret it names, the keyring, the KMS set-up.
    /// Prints every problem and exits non-zero if any; says what the
    /// defaults will do. Writes nothing.
    Check {
        file: PathBuf,
        /// The command the file is for.
        /// Default: `serve`; a file without any section only `serve` reads
        /// ([rtmp], [hls], [encryption], [[streams]]) is also judged as a key
        /// server's, in a note.
        #[arg(long, value_enum)]
        role: Option<RoleArg>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum RoleArg {
    Serve,
    Keyserver,
}

/// `sealcast config check FILE`: problems on stderr (one line each), what
/// the defaults do on stdout, non-zero exit on any problem.
fn config_check(file: &Path, role: Option<RoleArg>) -> anyhow::Result<()> {
    use sealcast::tools::config_check::{self, Role};
    let config = load_config(Some(file))?;
    let (check_role, name) = match role {
        Some(RoleArg::Keyserver) => (Role::Keyserver, "keyserver"),
        Some(RoleArg::Serve) | None => (Role::Serve, "serve"),
    };
    let report = config_check::check(&config, check_role);
    for note in &report.notes {
        println!("{}: {note}", file.display());
    }
    let text = std::fs::read_to_string(file).unwrap_or_default();
    if role.is_none() && !config_check::has_serve_sections(&text) {
        let as_keyserver = config_check::check(&config, Role::Keyserver);
        let verdict = match as_keyserver.problems.first() {
            None => "ok".to_owned(),
            Some(first) => format!("would be refused: {first}"),
        };
        println!(
            "{}: (no section only serve reads) as a key server's configuration (--role keyserver): {verdict}",
            file.display()
        );
    }
    if report.problems.is_empty() {
        println!("{}: ok for sealcast {name}", file.display());
        return Ok(());
    }
    let lines: Vec<String> = report
        .problems
        .iter()
        .map(|p| format!("{}: {p}", file.display()))
        .collect();
    anyhow::bail!(lines.join("\n"))
}

fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    match path {
        Some(path) => Config::load(path).map_err(|e| {
            let lines: Vec<String> = e.problems.iter().map(|p| format!("{}: {p}", path.display())).collect();
            anyhow::anyhow!(lines.join("\n"))
        }),
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

/// Refuses a token pattern that matches no stream of the configuration (the
/// default stream `live/demo` when it lists none). With a publish hook any
/// pattern goes: the hook creates streams the configuration does not list.
fn check_listed(config: &Config, pattern: &str) -> anyhow::Result<()> {
    if config.auth.publish_hook.is_some() {
        return Ok(());
    }
    let listed: Vec<String> = if config.streams.is_empty() {
        vec!["live/demo".to_owned()]
    } else {
        config.streams.iter().map(|s| format!("{}/{}", s.app, s.name)).collect()
    };
    let matches = |stream: &String| match pattern.strip_suffix("/*") {
        _ if pattern == "*" => true,
        Some(app) => stream.split('/').next() == Some(app),
        None => stream == pattern,
    };
    anyhow::ensure!(
        listed.iter().any(matches),
        "--stream {pattern} matches no stream of the configuration ({}); pass --config with the server's \
         configuration, or --unlisted for a stream it does not list",
        listed.join(", ")
    );
    Ok(())
}

fn parse_stream_name(s: &str) -> Result<StreamName, String> {
    StreamName::parse(s).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log = LogControl::init(cli.log_format);
    match run(cli, &log) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            for line in error_lines(&error) {
                eprintln!("error: {line}");
            }
            ExitCode::FAILURE
        }
    }
}

/// An error as the lines to print: one per problem (a configuration error
/// lists several), each with its causes appended once. A cause whose text
/// the message already holds (errors that show their source) is not
/// repeated.
fn error_lines(error: &anyhow::Error) -> Vec<String> {
    let mut message = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !message.contains(&cause) {
            message = format!("{message}: {cause}");
        }
    }
    message.lines().map(str::to_owned).collect()
}

fn run(cli: Cli, log: &Arc<LogControl>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    match cli.command {
        Command::Package {
            input,
            outdir,
            segment_duration_secs,
            segments_per_key,
            keyring,
            new_keyring,
            replace,
            name,
            key_uri_base,
        } => {
            let options = PackageOptions {
                stream: name,
                segment_duration_secs,
                segments_per_key,
                key_uri_base,
            };
            package_command(&runtime, &input, &outdir, &keyring, new_keyring, replace, &options)?
        }
        Command::Serve { config } => serve(&runtime, config.as_deref(), log)?,
        Command::Keyserver { config } => keyserver(&runtime, config.as_deref(), log, ViewerNode::KeyServer)?,
        Command::Edge { config } => keyserver(&runtime, config.as_deref(), log, ViewerNode::Edge)?,
        Command::Token {
            stream,
            ttl_secs,
            unlisted,
            sub,
            config,
        } => {
            let config = load_config(config.as_deref())?;
            if !unlisted {
                check_listed(&config, &stream)?;
            }
            let secret = config.read_token_secret()?;
            let claims = Claims {
                exp: now_unix_secs() + ttl_secs,
                stream,
                sub,
                jti: None,
                recording: None,
            };
            println!(
                "{}",
                auth::mint_with_audience(&secret, &claims, config.auth.audience.as_deref())
            );
        }
        Command::Kms { command } => kms_command(command)?,
        Command::Config {
            command: ConfigCommand::Check { file, role },
        } => config_check(&file, role)?,
        Command::BenchPush(args) => bench_push(&runtime, args)?,
        Command::BenchPlay(args) => bench_play(&runtime, args)?,
        Command::Decrypt {
            playlist,
            output,
            keyring,
        } => decrypt_command(&runtime, &playlist, &output, &keyring)?,
    }
    Ok(())
}

/// `sealcast package`: a file into encrypted HLS, in a directory or a bucket.
fn package_command(
    runtime: &tokio::runtime::Runtime,
    input: &Path,
    outdir: &str,
    keyring: &KeyringArgs,
    new_keyring: bool,
    replace: bool,
    options: &PackageOptions,
) -> anyhow::Result<()> {
    let kms = open_tool_keyring(keyring, "package", new_keyring)?;
    let s3 = match (&keyring.config, outdir.starts_with("s3://")) {
        (Some(path), true) => load_config(Some(path))?.storage.s3,
        _ => None,
    };
    let destination = package::Destination::parse(outdir, s3.as_ref())?;
    let report = runtime.block_on(package::package_into(input, &destination, replace, options, &kms))?;
    println!(
        "packaged {} into {}: {} segments, {} keys, {} video and {} audio frames, {} tags skipped",
        input.display(),
        destination.playlist_location(),
        report.segments,
        report.keys,
        report.video_frames,
        report.audio_frames,
        report.skipped_tags
    );
    Ok(())
}

/// `sealcast decrypt`: a packaged playlist's segments back to plain TS.
fn decrypt_command(
    runtime: &tokio::runtime::Runtime,
    playlist: &Path,
    output: &Path,
    keyring: &KeyringArgs,
) -> anyhow::Result<()> {
    let kms = open_tool_keyring(keyring, "decrypt", false)?;
    let segments = runtime
        .block_on(package::decrypt(playlist, output, &kms))
        .map_err(|e| match e {
            package::PackageError::Kms(sealcast::kms::KmsError::InvalidCiphertext) => anyhow::anyhow!(
                "{e}: keyring {} is not the one these keys were wrapped with; pass --keyring FILE or \
                 --config with the configuration of the server or package run that wrote {}",
                kms.path().display(),
                playlist.display()
            ),
            e => e.into(),
        })?;
    println!("decrypted {segments} segments into {}", output.display());
    Ok(())
}

/// `sealcast serve`: RTMP and HTTP until SIGINT or SIGTERM.
fn serve(runtime: &tokio::runtime::Runtime, config_path: Option<&Path>, log: &Arc<LogControl>) -> anyhow::Result<()> {
    let config = load_config(config_path)?;
    log.apply(config.log.level.as_deref()).map_err(anyhow::Error::msg)?;
    raise_open_file_limit();
    let server = Server::from_config(&config)?;
    runtime.block_on(async {
        server.check_storage().await?;
        let rtmp = tokio::net::TcpListener::bind(config.rtmp.listen)
            .await
            .with_context(|| format!("binding RTMP to {}", config.rtmp.listen))?;
        let http = tokio::net::TcpListener::bind(config.http.listen)
            .await
            .with_context(|| format!("binding HTTP to {}", config.http.listen))?;
        let rtmps = match config.rtmp.tls_listen {
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding RTMPS to {addr}"))?,
            ),
            None => None,
        };
        let metrics = bind_metrics(&config).await?;
        let shutdown = server::shutdown_signal().context("installing signal handlers")?;
        reload::reload_on_hangup(
            server.reloader().with_log_level(log.setter()),
            config_path.map(Path::to_owned),
        )
        .context("installing the SIGHUP handler")?;
        let rtmps_addr = rtmps.as_ref().map(tokio::net::TcpListener::local_addr).transpose()?;
        print_banner(
            &config,
            config_path,
            &server,
            rtmp.local_addr()?,
            rtmps_addr,
            http.local_addr()?,
        );
        server.run_with_listeners(rtmp, rtmps, http, metrics, shutdown).await?;
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
fn keyserver(
    runtime: &tokio::runtime::Runtime,
    config_path: Option<&Path>,
    log: &Arc<LogControl>,
    node: ViewerNode,
) -> anyhow::Result<()> {
    let config = load_config(config_path)?;
    log.apply(config.log.level.as_deref()).map_err(anyhow::Error::msg)?;
    raise_open_file_limit();
    let server = match node {
        ViewerNode::KeyServer => KeyServer::from_config(&config)?,
        ViewerNode::Edge => KeyServer::edge_from_config(&config)?,
    };
    runtime.block_on(async {
        server.check_storage().await?;
        let http = tokio::net::TcpListener::bind(config.http.listen)
            .await
            .with_context(|| format!("binding HTTP to {}", config.http.listen))?;
        let metrics = bind_metrics(&config).await?;
        let shutdown = server::shutdown_signal().context("installing signal handlers")?;
        reload::reload_on_hangup(
            server.reloader().with_log_level(log.setter()),
            config_path.map(Path::to_owned),
        )
        .context("installing the SIGHUP handler")?;
        // One line on stdout, for people and for scripts that start it on port 0.
        let scheme = if config.http.tls_files().is_some() {
            "https"
        } else {
            "http"
        };
        println!(
            "sealcast {} listening on {scheme}://{}",
            node.command(),
            http.local_addr()?
        );
        std::io::Write::flush(&mut std::io::stdout())?;
        server.run_with_metrics(http, metrics, shutdown).await?;
        anyhow::Ok(())
    })
}

/// What `keyserver()` runs: the key endpoint alone, or an edge.
#[derive(Clone, Copy)]
enum ViewerNode {
    KeyServer,
    Edge,
}

impl ViewerNode {
    fn command(self) -> &'static str {
        match self {
            ViewerNode::KeyServer => "keyserver",
            ViewerNode::Edge => "edge",
        }
    }
}

/// What a person needs after start: OBS settings, a playable URL, how to mint
/// tokens. Stdout may end up in a journal: the publish key is shown only when
/// it was just generated, and a ready-made token only on a terminal.
fn print_banner(
    config: &Config,
    config_path: Option<&Path>,
    server: &Server,
    rtmp: std::net::SocketAddr,
    rtmps: Option<std::net::SocketAddr>,
    http: std::net::SocketAddr,
) {
    let on_terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let base = match config.http.public_base() {
        "" if config.http.tls_files().is_some() => format!("https://{}", reachable(http)),
        "" => format!("http://{}", reachable(http)),
        base => base.to_owned(),
    };
    let config_arg = config_path
        .map(|p| format!(" --config {}", p.display()))
        .unwrap_or_default();
    println!("sealcast is running: RTMP on {rtmp}, HTTP on {http}");
    if let Some(rtmps) = rtmps {
        println!("RTMPS on {rtmps}");
    }
    if rtmp.ip().is_loopback() {
        println!(
            "(RTMP listens on loopback only: for an encoder on another machine set [rtmp] listen = \"0.0.0.0:{}\")",
            rtmp.port()
        );
    }
    for stream in server.streams() {
        let key = match (&stream.key_origin, stream.generated_now) {
            (KeyOrigin::Generated(path), true) => format!(
                "{} (just generated; kept in {}, shown only now)",
                stream.publish_key.expose_str().unwrap_or("?"),
                path.display()
            ),
            (KeyOrigin::Generated(path), false) => format!("(generated earlier, kept in {})", path.display()),
            (KeyOrigin::Inline, _) => "(as in the config file)".to_owned(),
            (KeyOrigin::Env(var), _) => format!("(from ${var})"),
            (KeyOrigin::File(path), _) => format!("(from {})", path.display()),
        };
        let ttl = sealcast::config::DEFAULT_TOKEN_TTL_SECS;
        println!();
        println!("stream {}", stream.path());
        println!("  OBS: Settings > Stream > Service: Custom");
        println!("       Server:     rtmp://{}/{}", reachable(rtmp), stream.app);
        println!("       Stream Key: {key}");
        println!("       (Settings > Output > Keyframe Interval: 2 s)");
        let url = format!("{base}/{}/{}/index.m3u8", stream.app, stream.name);
        let watch = format!("{base}/watch/{}/{}", stream.app, stream.name);
        if on_terminal {
            let token = server.key_service().mint_token(&Claims {
                exp: now_unix_secs() + ttl,
                stream: stream.path(),
                sub: None,
                jti: None,
                recording: None,
            });
            println!("  watch in a browser (token valid {} min):", ttl / 60);
            println!("       {watch}?token={token}");
            println!("  play (token valid {} min):", ttl / 60);
            println!("       ffplay '{url}?token={token}'");
        } else {
            println!("  play: TOKEN=$(sealcast token --stream {}{config_arg})", stream.path());
            println!("        ffplay \"{url}?token=$TOKEN\"");
            println!("        watch in a browser: {watch}?token=$TOKEN");
        }
    }
    println!();
    println!(
        "more tokens: sealcast token --stream APP/NAME --ttl-secs {ttl}{config_arg}",
        ttl = sealcast::config::DEFAULT_TOKEN_TTL_SECS
    );
}

/// An address to show people: a listener on all addresses (0.0.0.0, ::) is
/// shown with this machine's address on its default route, which other
/// machines can usually reach.
fn reachable(addr: std::net::SocketAddr) -> std::net::SocketAddr {
    if !addr.ip().is_unspecified() {
        return addr;
    }
    // Connecting a UDP socket sends nothing; it only picks the route.
    let probe = if addr.is_ipv4() {
        "192.0.2.1:9"
    } else {
        "[2001:db8::1]:9"
    };
    let local = std::net::UdpSocket::bind(std::net::SocketAddr::new(addr.ip(), 0))
        .and_then(|s| s.connect(probe).and_then(|()| s.local_addr()));
    match local {
        Ok(local) if !local.ip().is_unspecified() => std::net::SocketAddr::new(local.ip(), addr.port()),
        _ => std::net::SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn banner_addresses_are_reachable_ones() {
        let loopback: std::net::SocketAddr = "127.0.0.1:1935".parse().unwrap();
        assert_eq!(reachable(loopback), loopback);
        let any = reachable("0.0.0.0:1935".parse().unwrap());
        assert!(!any.ip().is_unspecified(), "{any}");
        assert_eq!(any.port(), 1935);
    }

    #[test]
    fn an_error_is_one_line_per_problem_without_repeats() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        let repeated = anyhow::Error::new(io).context("keyring k.json: open: No such file");
        assert_eq!(error_lines(&repeated), ["keyring k.json: open: No such file"]);
        let chained = anyhow::anyhow!("inner cause").context("binding RTMP to 127.0.0.1:1935");
        assert_eq!(error_lines(&chained), ["binding RTMP to 127.0.0.1:1935: inner cause"]);
        let several = anyhow::anyhow!("a.toml: first\na.toml: second");
        assert_eq!(error_lines(&several), ["a.toml: first", "a.toml: second"]);
    }
}
