//! The one wall clock. Pure code takes the time as a parameter; the edges
//! (the store, the server, the worker, providers) read it here.

/// Milliseconds since the Unix epoch (0 if the system clock is before it).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A day number (days since 1970-01-01) as a civil date (year, month,
/// day), proleptic Gregorian (Howard Hinnant's algorithm). Pure.
pub fn civil(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A civil date as a day number (the inverse of [`civil`]). Pure.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    #[test]
    fn civil_dates_round_trip() {
        assert_eq!(super::civil(0), (1970, 1, 1));
        assert_eq!(super::civil(19_675), (2023, 11, 14));
        for z in [-800_000, -1, 0, 59, 60, 19_675, 2_000_000] {
            let (y, m, d) = super::civil(z);
            assert_eq!(super::days_from_civil(y, m, d), z);
        }
    }
}
