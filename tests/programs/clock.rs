//! Checking a time a server printed against the test's own clock, without the C library: the
//! servers run with a fixed `TZ` (see [`TZ`]), so their local time is UTC plus a known offset.

use std::time::{SystemTime, UNIX_EPOCH};

/// A POSIX `TZ` value needing no zone files: an invented zone `ABC`, 5 h 30 min east of UTC.
/// Not UTC, and not a whole hour, so a server answering in UTC, or with the wrong zone, is caught.
pub const TZ: &str = "ABC-5:30";
/// [`TZ`]'s offset east of UTC, in seconds.
pub const TZ_OFFSET_SECS: i64 = 5 * 3600 + 30 * 60;
/// What `%Z %z` gives in [`TZ`].
pub const TZ_ZONE_AND_OFFSET: &str = "ABC +0530";

/// Seconds since the Unix epoch, now.
pub fn now_secs() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970");
    i64::try_from(since.as_secs()).expect("a representable time")
}

/// `YYYY-MM-DD HH:MM:SS` (the seeds' `%Y-%m-%d %X`), read as a time in [`TZ`], in seconds since
/// the Unix epoch; `None` if it is not of that form.
pub fn parse_local(text: &str) -> Option<i64> {
    let (date, time) = text.split_once(' ')?;
    let date: Vec<i64> = date
        .split('-')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let time: Vec<i64> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let ([y, m, d], [hh, mm, ss]) = (date.as_slice(), time.as_slice()) else {
        return None;
    };
    if !(1..=12).contains(m) || !(1..=31).contains(d) || *hh > 23 || *mm > 59 || *ss > 60 {
        return None;
    }
    let local = days_from_civil(*y, *m, *d) * 86_400 + hh * 3600 + mm * 60 + ss;
    Some(local - TZ_OFFSET_SECS)
}

/// Asserts that `text` is `%Y-%m-%d %X` in [`TZ`] for a moment between `before` and `after`
/// (from [`now_secs`]), give or take a second for the truncation to whole seconds.
pub fn assert_local_time_between(text: &str, before: i64, after: i64) {
    let Some(secs) = parse_local(text) else {
        panic!("{text:?} is not a `%Y-%m-%d %X` time");
    };
    assert!(
        before - 1 <= secs && secs <= after + 1,
        "{text:?} is not the local time in {TZ}: it is {}s off",
        if secs < before {
            secs - before
        } else {
            secs - after
        }
    );
}

/// Days from 1970-01-01 to the given proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[test]
fn parse_local_knows_the_epoch_and_the_zone() {
    assert_eq!(parse_local("1970-01-01 05:30:00"), Some(0));
    assert_eq!(parse_local("2000-03-01 05:30:00"), Some(951_868_800));
    assert_eq!(
        parse_local("2024-02-29 23:59:59"),
        Some(1_709_251_199 - TZ_OFFSET_SECS)
    );
    assert_eq!(parse_local("2024-13-01 00:00:00"), None);
    assert_eq!(parse_local("yesterday"), None);
}
