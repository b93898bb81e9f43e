//! Time, for everyone: the [`Clock`] trait that adapters implement with the
//! system clock and tests with a [`ManualClock`] they move, and UTC date-times
//! for `#EXT-X-PROGRAM-DATE-TIME` (RFC 8216 4.3.2.6) and AWS SigV4, written as
//! RFC 3339 `date-time` with milliseconds and `Z`.
//!
//! Nothing here reads the clock: the cores take times as arguments, and the
//! one reader of the system clock is the adapters' `sealcast::clock::SystemClock`.
//!
//! Calendar conversion is Howard Hinnant's `civil_from_days` /
//! `days_from_civil` (proleptic Gregorian calendar), so no date crate is needed.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// Where "now" comes from. Injected (as `Arc<dyn Clock>`), so token expiry,
/// cache lifetimes and sessions are tested by moving a clock, not by sleeping.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_unix_ms(&self) -> u64;

    /// Whole seconds since the Unix epoch.
    fn now_unix_secs(&self) -> u64 {
        self.now_unix_ms() / 1000
    }
}

/// A clock that stands still until it is moved: for tests and for replaying
/// recorded input.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// A clock showing `unix_secs`.
    pub fn at_unix_secs(unix_secs: u64) -> Self {
        Self(AtomicU64::new(unix_secs.saturating_mul(1000)))
    }

    /// Sets the time to `unix_secs`.
    pub fn set_unix_secs(&self, unix_secs: u64) {
        self.0.store(unix_secs.saturating_mul(1000), Ordering::Relaxed);
    }

    /// Moves the clock forward (or back, with a negative value) by `secs`.
    pub fn advance_secs(&self, secs: i64) {
        let delta_ms = secs.saturating_mul(1000);
        let _ = self.0.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |ms| {
            Some(ms.saturating_add_signed(delta_ms))
        });
    }
}

impl Clock for ManualClock {
    fn now_unix_ms(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

const MS_PER_DAY: i64 = 86_400_000;

/// A UTC instant with millisecond precision in the years 0000 to 9999 (the
/// four-digit years RFC 3339 5.6 allows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcDateTime {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    pub millisecond: u16,
}

impl UtcDateTime {
    /// The calendar form of a Unix time in milliseconds; `None` outside the
    /// years 0000 to 9999.
    pub fn from_unix_ms(unix_ms: i64) -> Option<Self> {
        let days = unix_ms.div_euclid(MS_PER_DAY);
        let ms_of_day = unix_ms.rem_euclid(MS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        Some(Self {
            year: u16::try_from(year).ok().filter(|y| *y <= 9999)?,
            month,
            day,
            // ms_of_day < 86_400_000, so each quotient fits its field.
            hour: (ms_of_day / 3_600_000) as u8,
            minute: (ms_of_day / 60_000 % 60) as u8,
            second: (ms_of_day / 1000 % 60) as u8,
            millisecond: (ms_of_day % 1000) as u16,
        })
    }

    /// Milliseconds since the Unix epoch.
    pub fn to_unix_ms(&self) -> i64 {
        let days = days_from_civil(i64::from(self.year), i64::from(self.month), i64::from(self.day));
        days * MS_PER_DAY
            + i64::from(self.hour) * 3_600_000
            + i64::from(self.minute) * 60_000
            + i64::from(self.second) * 1000
            + i64::from(self.millisecond)
    }

    /// Parses an RFC 3339 `date-time`: `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`.
    /// Fractions beyond milliseconds are truncated; a leap second (`:60`) is
    /// refused since Unix time cannot name it. Returns Unix milliseconds.
    pub fn parse_rfc3339(text: &str) -> Option<i64> {
        let b = text.as_bytes();
        let year = digits(b, 0, 4)?;
        let month = digits(b, 5, 2)?;
        let day = digits(b, 8, 2)?;
        let hour = digits(b, 11, 2)?;
        let minute = digits(b, 14, 2)?;
        let second = digits(b, 17, 2)?;
        let seps = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
        if seps.iter().any(|&(i, c)| b.get(i) != Some(&c)) || !matches!(b.get(10), Some(b'T' | b't')) {
            return None;
        }
        if !(1..=12).contains(&month)
            || day < 1
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 59
        {
            return None;
        }
        let mut i = 19;
        let mut millisecond = 0;
        if b.get(i) == Some(&b'.') {
            i += 1;
            let start = i;
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                if i - start < 3 {
                    millisecond = millisecond * 10 + i64::from(b.get(i)? - b'0');
                }
                i += 1;
            }
            let n = i - start;
            if n == 0 {
                return None;
            }
            for _ in n..3 {
                millisecond *= 10;
            }
        }
        let offset_ms = match b.get(i..)? {
            [b'Z' | b'z'] => 0,
            [sign @ (b'+' | b'-'), ..] => {
                let oh = digits(b, i + 1, 2)?;
                let om = digits(b, i + 4, 2)?;
                if b.get(i + 3) != Some(&b':') || b.len() != i + 6 || oh > 23 || om > 59 {
                    return None;
                }
                let ms = (oh * 60 + om) * 60_000;
                if *sign == b'+' { ms } else { -ms }
            }
            _ => return None,
        };
        let days = days_from_civil(year, month, day);
        Some(days * MS_PER_DAY + hour * 3_600_000 + minute * 60_000 + second * 1000 + millisecond - offset_ms)
    }
}

impl fmt::Display for UtcDateTime {
    /// `2026-11-22T08:00:00.000Z`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.millisecond
        )
    }
}

/// `len` ASCII digits at `at` as a number.
fn digits(b: &[u8], at: usize, len: usize) -> Option<i64> {
    let field = b.get(at..at.checked_add(len)?)?;
    field.iter().try_fold(0i64, |acc, c| {
        if c.is_ascii_digit() {
            Some(acc * 10 + i64::from(c - b'0'))
        } else {
            None
        }
    })
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// (year, month, day) of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let z = days + 719_468; // shift the epoch to 0000-03-01
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of 400-year era, [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of March-based year, [0, 365]
    let mp = (5 * doy + 2) / 153; // March = 0, [0, 11]
    let day = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let month = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let year = yoe + era * 400 + i64::from(month <= 2);
    // Both are within the ranges noted above.
    (year, month as u8, day as u8)
}

/// Day count since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12; // March = 0
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known answers, cross-checked with GNU `date -u -d ... +%s%3N`.
    const KNOWN: &[(i64, &str)] = &[
        (0, "1970-01-01T00:00:00.000Z"),
        (-1, "1969-12-31T23:59:59.999Z"),
        (1_709_210_096_789, "2024-02-29T12:34:56.789Z"),
        (1_795_334_400_000, "2026-11-22T08:00:00.000Z"),
        (951_868_800_000, "2000-03-01T00:00:00.000Z"),
        (951_868_799_999, "2000-02-29T23:59:59.999Z"),
        (-2_203_891_200_000, "1900-03-01T00:00:00.000Z"),
        (-62_167_219_200_000, "0000-01-01T00:00:00.000Z"),
        (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
    ];

    #[test]
    fn formats_and_parses_known_instants() {
        for &(ms, text) in KNOWN {
            let dt = UtcDateTime::from_unix_ms(ms).unwrap();
            assert_eq!(dt.to_string(), text);
            assert_eq!(dt.to_unix_ms(), ms, "{text}");
            assert_eq!(UtcDateTime::parse_rfc3339(text), Some(ms), "{text}");
        }
    }

    #[test]
    fn years_outside_four_digits_are_refused() {
        assert_eq!(UtcDateTime::from_unix_ms(253_402_300_800_000), None);
        assert_eq!(UtcDateTime::from_unix_ms(-62_167_219_200_001), None);
        assert_eq!(UtcDateTime::from_unix_ms(i64::MAX), None);
        assert_eq!(UtcDateTime::from_unix_ms(i64::MIN), None);
    }

    #[test]
    fn every_day_of_four_centuries_round_trips() {
        let start = days_from_civil(1900, 1, 1);
        let mut expected = (1900, 1, 1);
        for days in start..start + 146_097 {
            let (y, m, d) = civil_from_days(days);
            assert_eq!((y, i64::from(m), i64::from(d)), expected);
            assert_eq!(days_from_civil(y, i64::from(m), i64::from(d)), days);
            expected = if d == days_in_month(y, i64::from(m)) as u8 {
                if m == 12 {
                    (y + 1, 1, 1)
                } else {
                    (y, i64::from(m) + 1, 1)
                }
            } else {
                (y, i64::from(m), i64::from(d) + 1)
            };
        }
    }

    #[test]
    fn parses_offsets_and_fractions() {
        let cases: &[(&str, Option<i64>)] = &[
            ("2026-11-22T09:00:00+01:00", Some(1_795_334_400_000)),
            ("2026-11-22T07:30:00.5-00:30", Some(1_795_334_400_500)),
            ("2026-11-22t08:00:00.123456z", Some(1_795_334_400_123)),
            ("2026-11-22T08:00:00.12Z", Some(1_795_334_400_120)),
            ("2026-11-22T08:00:00Z", Some(1_795_334_400_000)),
            ("2026-11-22T08:00:00.Z", None),
            ("2026-11-22T08:00:00", None),
            ("2026-11-22 08:00:00Z", None),
            ("2025-02-29T00:00:00Z", None),
            ("2026-13-01T00:00:00Z", None),
            ("2026-11-22T24:00:00Z", None),
            ("2026-11-22T23:59:60Z", None),
            ("2026-11-22T08:00:00+0100", None),
            ("2026-11-22T08:00:00+01:00x", None),
            ("2026-11-22T08:00:00ZZ", None),
            ("+026-11-22T08:00:00Z", None),
            ("2026-11-22T08:00:00.000\u{e9}", None),
            ("", None),
        ];
        for &(text, want) in cases {
            assert_eq!(UtcDateTime::parse_rfc3339(text), want, "{text:?}");
        }
    }
}
