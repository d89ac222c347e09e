//! Usage rolls up per UTC day: an interval that spans midnight is split
//! across the days it touches, in proportion to the time in each.

use crate::clock::{civil, days_from_civil};

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;

/// The UTC day (days since 1970-01-01) holding `ms`.
pub fn day_of(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS)
}

/// The pieces of `[start_ms, end_ms)` per day: `(day, milliseconds)`, in
/// order. An empty or reversed interval is one empty piece on its start
/// day, so that a zero-length record still lands somewhere.
pub fn split(start_ms: i64, end_ms: i64) -> Vec<(i64, i64)> {
    if end_ms <= start_ms {
        return vec![(day_of(start_ms), 0)];
    }
    let mut out = Vec::new();
    let mut t = start_ms;
    while t < end_ms {
        let day = day_of(t);
        let next = ((day + 1) * DAY_MS).min(end_ms);
        out.push((day, next - t));
        t = next;
    }
    out
}

/// `amount` spread over the pieces of `[start_ms, end_ms)`: `(day, part)`,
/// the parts summing to `amount`.
pub fn spread(amount: f64, start_ms: i64, end_ms: i64) -> Vec<(i64, f64)> {
    let pieces = split(start_ms, end_ms);
    let total: i64 = pieces.iter().map(|(_, ms)| ms).sum();
    if total == 0 {
        return vec![(pieces[0].0, amount)];
    }
    pieces
        .into_iter()
        .map(|(d, ms)| (d, amount * ms as f64 / total as f64))
        .collect()
}

/// `YYYY-MM-DD` of a day number (proleptic Gregorian, UTC).
pub fn date(day: i64) -> String {
    let (y, m, d) = civil(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The day number of `YYYY-MM-DD`, if it is a date.
pub fn parse_date(s: &str) -> Option<i64> {
    let mut it = s.trim().splitn(3, '-');
    let y: i64 = it.next()?.parse().ok()?;
    let m: u32 = it.next()?.parse().ok()?;
    let d: u32 = it.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

/// The first day of the month holding `day`, and the first day of the
/// next month.
pub fn month_of(day: i64) -> (i64, i64) {
    let (y, m, _) = civil(day);
    let start = days_from_civil(y, m, 1);
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    (start, days_from_civil(ny, nm, 1))
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}
