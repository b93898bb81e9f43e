//! Fewer, larger socket reads from a publishing encoder: the receive
//! low-water mark (`SO_RCVLOWAT`) follows the stream's own byte rate.
//!
//! Encoders write each RTMP chunk as it is produced (ffmpeg and OBS: one
//! `send` per chunk of at most 4 KiB), so a server that reads whenever bytes
//! arrive wakes about 130 times a second for a 2.7 Mb/s stream, and every
//! wakeup costs an epoll event, a task poll, a `recv` and the ACK it sends.
//! With the mark set, Linux makes the socket readable only once that many
//! bytes are queued (`tcp_data_ready` and `tcp_poll` compare against
//! `sock_rcvlowat`; a FIN or an error still wakes at once), and one wakeup
//! takes several chunks. `scripts/bench-ingest.sh 50` measured per-stream
//! CPU halved (docs/performance.md).
//!
//! The delay is bounded twice: the mark is [`BATCH_DELAY`] worth of the rate
//! measured over the last second, so traffic at that rate is read at most
//! that late; and when no read completes for [`QUIET`] the mark drops to one
//! byte for one read, so what is queued is read anyway (setting the option
//! re-checks readiness: `tcp_set_rcvlowat` calls `tcp_data_ready`), then
//! comes back. Video is bursty (a 100 KB keyframe, then P-frames of 2 KB), so
//! the quiet deadline is what bounds the delay after a keyframe: bytes wait
//! at most [`QUIET`] in the kernel. Only a publishing connection batches;
//! commands before and after a publish are read as they come.

use std::time::Duration;

use tokio::time::Instant;

/// The longest steady traffic waits in the kernel before it is read: the
/// segment's publication waits for its closing keyframe at most this much
/// longer.
pub(super) const BATCH_DELAY: Duration = Duration::from_millis(20);
/// No read for this long, with the mark above one byte: the mark drops to
/// one for the next read.
pub(super) const QUIET: Duration = Duration::from_millis(100);
/// The largest mark: half the connection's read buffer, so one wakeup's
/// bytes are taken in one or two reads.
pub(super) const MAX_MARK: u32 = 16 * 1024;
/// The rate is measured over windows of this length.
const RATE_WINDOW: Duration = Duration::from_secs(1);

/// The sans-IO half: decides the mark from what was read and when. Every
/// method returns the new mark when the socket's must change, `None` when
/// it stays.
#[derive(Debug)]
pub(super) struct ReadBatching {
    /// Whether a publish is running (only then is a mark above one set).
    active: bool,
    /// The mark the measured rate asks for.
    target: u32,
    /// The mark the socket has: the target, or one byte after a quiet spell.
    mark: u32,
    window_started: Instant,
    window_bytes: u64,
}

impl ReadBatching {
    /// Inactive: the socket keeps the default mark of one byte.
    pub(super) fn new(now: Instant) -> Self {
        Self {
            active: false,
            target: 1,
            mark: 1,
            window_started: now,
            window_bytes: 0,
        }
    }

    /// A publish started: measure its rate from now on.
    pub(super) fn start(&mut self, now: Instant) {
        self.active = true;
        self.restart_window(now);
    }

    /// The publish ended: read whatever comes next as it comes.
    pub(super) fn stop(&mut self) -> Option<u32> {
        self.active = false;
        self.target = 1;
        self.set(1)
    }

    /// `bytes` were read at `now`.
    pub(super) fn on_read(&mut self, bytes: usize, now: Instant) -> Option<u32> {
        if !self.active {
            return None;
        }
        self.window_bytes = self.window_bytes.saturating_add(bytes as u64);
        let elapsed = now.saturating_duration_since(self.window_started);
        if elapsed >= RATE_WINDOW {
            let per_delay = u128::from(self.window_bytes) * BATCH_DELAY.as_micros() / elapsed.as_micros().max(1);
            self.restart_window(now);
            let target = u32::try_from(per_delay).unwrap_or(MAX_MARK).clamp(1, MAX_MARK);
            // Within a quarter of the current target: not worth a system call.
            if target.abs_diff(self.target).saturating_mul(4) > self.target {
                self.target = target;
            }
        }
        // Also the way back from one byte after a quiet spell.
        self.set(self.target)
    }

    /// When to stop waiting for a full mark, given the last read at
    /// `last_read`; `None` while the mark is one byte.
    pub(super) fn quiet_deadline(&self, last_read: Instant) -> Option<Instant> {
        (self.mark > 1).then(|| last_read + QUIET)
    }

    /// Nothing was read for [`QUIET`]: take what is queued with the next
    /// read, however little.
    pub(super) fn on_quiet(&mut self) -> Option<u32> {
        self.set(1)
    }

    fn restart_window(&mut self, now: Instant) {
        self.window_started = now;
        self.window_bytes = 0;
    }

    fn set(&mut self, mark: u32) -> Option<u32> {
        (mark != self.mark).then(|| {
            self.mark = mark;
            mark
        })
    }
}

/// A transport whose receive low-water mark can be set.
pub(super) trait RecvLowWatermark {
    fn set_recv_low_watermark(&self, bytes: u32) -> std::io::Result<()>;
}

impl RecvLowWatermark for tokio::net::TcpStream {
    fn set_recv_low_watermark(&self, bytes: u32) -> std::io::Result<()> {
        sockopt::set_rcvlowat(self, bytes)
    }
}

/// RTMPS: the mark counts ciphertext bytes of the TCP socket underneath.
impl RecvLowWatermark for tokio_rustls::server::TlsStream<tokio::net::TcpStream> {
    fn set_recv_low_watermark(&self, bytes: u32) -> std::io::Result<()> {
        sockopt::set_rcvlowat(self.get_ref().0, bytes)
    }
}

/// In-memory streams of unit tests have no kernel buffer to batch.
#[cfg(test)]
impl RecvLowWatermark for tokio::io::DuplexStream {
    fn set_recv_low_watermark(&self, _: u32) -> std::io::Result<()> {
        Ok(())
    }
}

/// The one system call neither std, tokio nor socket2 wraps.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub(super) mod sockopt {
    use std::os::fd::{AsFd, AsRawFd};

    pub(in super::super) fn set_rcvlowat(socket: &impl AsFd, bytes: u32) -> std::io::Result<()> {
        let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        let fd = socket.as_fd();
        // SAFETY: `fd` is borrowed, so open for the whole call; the option
        // value points at a live c_int and its exact size is passed.
        let result = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVLOWAT,
                std::ptr::from_ref(&value).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if result == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    #[cfg(test)]
    pub(in super::super) fn rcvlowat(socket: &impl AsFd) -> std::io::Result<u32> {
        let mut value: libc::c_int = 0;
        let mut size = size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: as above; `size` tells the kernel how much it may write.
        let result = unsafe {
            libc::getsockopt(
                socket.as_fd().as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVLOWAT,
                std::ptr::from_mut(&mut value).cast(),
                &mut size,
            )
        };
        if result == 0 {
            Ok(u32::try_from(value).unwrap_or(0))
        } else {
            Err(std::io::Error::last_os_error())
        }
    }
}

/// Elsewhere the mark stays at one byte: reads as they come.
#[cfg(not(target_os = "linux"))]
pub(super) mod sockopt {
    pub(in super::super) fn set_rcvlowat(_: &impl std::os::fd::AsFd, _: u32) -> std::io::Result<()> {
        Err(std::io::ErrorKind::Unsupported.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2.7 Mb/s, the benchmark fixture's rate.
    const RATE: u64 = 2_700_000 / 8;

    fn publishing() -> (ReadBatching, Instant) {
        let now = Instant::now();
        let mut batching = ReadBatching::new(now);
        batching.start(now);
        (batching, now)
    }

    /// Reads of `chunk` bytes at `rate` bytes/s for `seconds`; the marks set.
    fn feed(batching: &mut ReadBatching, now: &mut Instant, rate: u64, chunk: u64, seconds: u64) -> Vec<u32> {
        let reads = rate * seconds / chunk;
        let gap = Duration::from_micros(chunk * 1_000_000 / rate);
        let mut marks = Vec::new();
        for _ in 0..reads {
            *now += gap;
            marks.extend(batching.on_read(chunk as usize, *now));
        }
        marks
    }

    #[test]
    fn the_mark_is_twenty_milliseconds_of_the_measured_rate() {
        let (mut batching, mut now) = publishing();
        let marks = feed(&mut batching, &mut now, RATE, 4096, 3);
        // Set once, after the first second; steady traffic changes nothing.
        assert_eq!(marks.len(), 1, "{marks:?}");
        let expected = RATE * 20 / 1000;
        assert!(marks[0].abs_diff(expected as u32) < 200, "{marks:?} against {expected}");
        assert_eq!(batching.quiet_deadline(now), Some(now + QUIET));
    }

    #[test]
    fn a_fast_stream_is_capped_and_a_slow_one_batches_little() {
        let (mut fast, mut now) = publishing();
        assert_eq!(feed(&mut fast, &mut now, 20_000_000 / 8, 4096, 2), vec![MAX_MARK]);
        let (mut audio_only, mut now) = publishing();
        // 128 kb/s: 320 bytes, a few AAC frames.
        let marks = feed(&mut audio_only, &mut now, 16_000, 400, 2);
        assert!(matches!(marks[..], [mark] if (300..=340).contains(&mark)), "{marks:?}");
    }

    #[test]
    fn a_quiet_socket_drops_the_mark_for_one_read() {
        let (mut batching, mut now) = publishing();
        let [mark] = feed(&mut batching, &mut now, RATE, 4096, 2)[..] else {
            panic!("one mark expected")
        };
        now += QUIET;
        assert_eq!(batching.on_quiet(), Some(1));
        assert_eq!(batching.quiet_deadline(now), None);
        assert_eq!(batching.on_quiet(), None, "already one byte");
        // The read that follows restores the mark at once.
        assert_eq!(batching.on_read(500, now), Some(mark));
        assert_eq!(batching.quiet_deadline(now), Some(now + QUIET));
    }

    #[test]
    fn only_a_running_publish_batches() {
        let now = Instant::now();
        let mut batching = ReadBatching::new(now);
        assert_eq!(batching.on_read(1 << 20, now + Duration::from_secs(2)), None);
        let (mut batching, mut now) = publishing();
        feed(&mut batching, &mut now, RATE, 4096, 2);
        assert_eq!(batching.stop(), Some(1));
        assert_eq!(batching.on_read(1 << 20, now + Duration::from_secs(2)), None);
    }

    #[tokio::test]
    async fn the_mark_reaches_the_kernel() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        assert_eq!(sockopt::rcvlowat(&server).unwrap(), 1);
        server.set_recv_low_watermark(6750).unwrap();
        assert_eq!(sockopt::rcvlowat(&server).unwrap(), 6750);
        drop(client);
    }
}
