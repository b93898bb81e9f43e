//! The load generators' subcommands, `sealcast bench-push` and `sealcast
//! bench-play`: their arguments and the reports they print. Part of the
//! binary; the generators themselves are `sealcast::tools::{loadgen, viewers}`.

use std::path::PathBuf;

use anyhow::Context;
use sealcast::tools::loadgen;

/// `sealcast bench-push`: many real-time RTMP publishers in one process.
#[derive(clap::Args)]
pub struct BenchPushArgs {
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
    /// Write pattern: `realtime` sends each message when due, chunked and
    /// written as ffmpeg does; `batched` writes every tag due in a tick at once.
    #[arg(long, default_value = "realtime", value_parser = ["realtime", "batched"])]
    pattern: String,
    /// Tick of the batched pattern: every tag due in a tick goes out in one write.
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u64).range(5..=500))]
    tick_ms: u64,
    /// Publishers start evenly spread over this time.
    #[arg(long, default_value_t = 2000)]
    ramp_ms: u64,
}

pub fn bench_push(runtime: &tokio::runtime::Runtime, args: BenchPushArgs) -> anyhow::Result<()> {
    use std::time::Duration;

    let (addr, app) = loadgen::parse_url(&args.url)?;
    let keys = publisher_keys(&args)?;
    anyhow::ensure!(!keys.is_empty(), "no publishers");
    let fixture = std::sync::Arc::new(loadgen::Fixture::load(&args.fixture)?);
    let publishers = keys.len();
    println!(
        "bench-push: {} to {}, fixture {} ({:.1} s loop, {:.2} Mb/s each)",
        plural(publishers, "publisher"),
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
        pattern: match args.pattern.as_str() {
            "batched" => loadgen::Pattern::Batched {
                tick: Duration::from_millis(args.tick_ms),
            },
            _ => loadgen::Pattern::Realtime,
        },
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
    let cpu = cpu_since(cpu_start, wall);
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
    anyhow::ensure!(
        s.failed == 0,
        "{} of {} failed{}",
        s.failed,
        plural(publishers, "publisher"),
        stats
            .errors()
            .first()
            .map(|e| format!(" (first error: {e})"))
            .unwrap_or_default()
    );
    Ok(())
}

/// The process's CPU time since `start`, and as a share of one core over
/// `wall`.
fn cpu_since(start: Option<std::time::Duration>, wall: std::time::Duration) -> String {
    match (start, loadgen::process_cpu_time()) {
        (Some(a), Some(b)) => format!(
            "{:.2} s ({:.1}% of one core)",
            (b - a).as_secs_f64(),
            (b - a).as_secs_f64() * 100.0 / wall.as_secs_f64()
        ),
        _ => "unknown".to_owned(),
    }
}

/// One stream key per publisher: from `--keys-file` (the first
/// `--publishers` of them), or from `--key-template`.
fn publisher_keys(args: &BenchPushArgs) -> anyhow::Result<Vec<String>> {
    let Some(path) = &args.keys_file else {
        let count = args.publishers.unwrap_or(1);
        return Ok(loadgen::keys_from_template(&args.key_template, args.first_index, count));
    };
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut keys: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if let Some(n) = args.publishers {
        let available = keys.len();
        anyhow::ensure!(
            n <= available,
            "{} has {available} keys, fewer than {n}",
            path.display()
        );
        keys.truncate(n);
    }
    Ok(keys)
}

/// `sealcast bench-play`: many simulated HLS viewers in one process.
#[derive(clap::Args)]
pub struct BenchPlayArgs {
    /// Playlist URL with its credential (http://host:port/app/name/index.m3u8?token=...);
    /// repeat for several streams; viewer i watches URL i mod count.
    #[arg(long = "url", required_unless_present = "urls_file")]
    urls: Vec<String>,
    /// File of playlist URLs, one a line, added to --url: one per viewer
    /// gives each its own token (per-viewer key budgets apply per token).
    #[arg(long)]
    urls_file: Option<PathBuf>,
    /// Number of viewers.
    #[arg(long, short = 'n', default_value_t = 1)]
    viewers: usize,
    /// Run time in seconds.
    #[arg(long, default_value_t = 30)]
    duration_secs: u64,
    /// Viewers start evenly spread over this time.
    #[arg(long, default_value_t = 2000)]
    ramp_ms: u64,
}

pub fn bench_play(runtime: &tokio::runtime::Runtime, args: BenchPlayArgs) -> anyhow::Result<()> {
    use sealcast::tools::viewers;
    use std::time::Duration;

    let mut urls = args.urls.clone();
    if let Some(path) = &args.urls_file {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        urls.extend(text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from));
    }
    anyhow::ensure!(!urls.is_empty(), "no playlist URL");
    let playlists = urls
        .iter()
        .map(|u| viewers::Url::parse(u))
        .collect::<Result<Vec<_>, _>>()?;
    anyhow::ensure!(args.viewers > 0, "no viewers");
    let options = viewers::Options {
        playlists,
        viewers: args.viewers,
        duration: Duration::from_secs(args.duration_secs),
        ramp: Duration::from_millis(args.ramp_ms),
    };
    let cpu_start = loadgen::process_cpu_time();
    let wall_start = std::time::Instant::now();
    let report = runtime.block_on(viewers::run(options));
    let wall = wall_start.elapsed().as_secs_f64().max(1e-3);
    let cpu = match (cpu_start, loadgen::process_cpu_time()) {
        (Some(a), Some(b)) => format!("{:.1}", (b - a).as_secs_f64() * 100.0 / wall),
        _ => "?".to_owned(),
    };
    println!(
        "bench-play: {} on {} for {:.1} s, generator cpu {cpu}% of one core",
        plural(args.viewers, "viewer"),
        plural(urls.len(), "playlist URL"),
        wall
    );
    println!(
        "{:<9} {:>9} {:>7} {:>10} {:>9} {:>8} {:>8} {:>8} {:>8}",
        "type", "requests", "errors", "MB", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms"
    );
    for kind in viewers::Kind::ALL {
        let k = report.kind(kind);
        println!(
            "{:<9} {:>9} {:>7} {:>10.1} {:>9.1} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
            kind.name(),
            k.requests,
            k.errors,
            k.bytes as f64 / 1e6,
            k.requests as f64 / wall,
            k.percentile_ms(50.0),
            k.percentile_ms(90.0),
            k.percentile_ms(99.0),
            k.percentile_ms(100.0)
        );
    }
    for error in &report.error_samples {
        println!("  error: {error}");
    }
    println!(
        "bench-play done: viewers={} playlists={} segments={} keys={} errors={} segment_mb={:.1}",
        args.viewers,
        report.playlist.requests,
        report.segment.requests,
        report.key.requests,
        report.errors(),
        report.segment.bytes as f64 / 1e6
    );
    std::io::Write::flush(&mut std::io::stdout())?;
    anyhow::ensure!(report.errors() == 0, "{} requests failed", report.errors());
    Ok(())
}

/// `1 publisher`, `2 publishers`.
fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
