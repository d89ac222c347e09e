//! Parsing of human-friendly quantities: durations (`90s`, `10m`, `1h30m`,
//! Slurm's `D-HH:MM:SS`), memory sizes (`512M`, `2G`) and `KEY=VALUE` pairs.

use crate::error::{Result, ValidationError};

/// Parses a duration into whole seconds.
///
/// Accepts a plain number of seconds (`3600`), unit suffixes that may be
/// combined (`1h30m`, `90s`, `2d`), and the Slurm forms `MM`, `MM:SS`,
/// `HH:MM:SS`, `D-HH`, `D-HH:MM` and `D-HH:MM:SS` when `slurm` is true (where
/// a bare number means minutes).
pub fn parse_duration(field: &str, text: &str, slurm: bool) -> Result<u64> {
    let t = text.trim();
    let err = || {
        ValidationError::new(
            "invalid-duration",
            field,
            format!("`{text}` is not a duration (examples: 90s, 10m, 1h30m, 2d, 1-12:00:00)"),
        )
    };
    if t.is_empty() {
        return Err(err());
    }
    if slurm || t.contains(':') || t.contains('-') {
        return parse_slurm_time(t).ok_or_else(err);
    }
    if t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse::<u64>().map_err(|_| err());
    }
    let mut total: u64 = 0;
    let mut num = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(err()),
        };
        let n: u64 = num.parse().map_err(|_| err())?;
        total = total
            .checked_add(n.checked_mul(unit).ok_or_else(err)?)
            .ok_or_else(err)?;
        num.clear();
    }
    if !num.is_empty() {
        return Err(err());
    }
    Ok(total)
}

/// Slurm time formats; a bare number is minutes. `None` when malformed.
fn parse_slurm_time(t: &str) -> Option<u64> {
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    if t == "UNLIMITED" || t == "INFINITE" {
        return Some(0);
    }
    let (days, rest) = match t.split_once('-') {
        Some((d, r)) => (num(d)?, Some(r)),
        None => (0, None),
    };
    let secs = match rest {
        // D-HH, D-HH:MM, D-HH:MM:SS
        Some(r) => {
            let p: Vec<&str> = r.split(':').collect();
            match p.as_slice() {
                [h] => num(h)? * 3600,
                [h, m] => num(h)? * 3600 + num(m)? * 60,
                [h, m, s] => num(h)? * 3600 + num(m)? * 60 + num(s)?,
                _ => return None,
            }
        }
        // MM, MM:SS, HH:MM:SS
        None => {
            let p: Vec<&str> = t.split(':').collect();
            match p.as_slice() {
                [m] => num(m)? * 60,
                [m, s] => num(m)? * 60 + num(s)?,
                [h, m, s] => num(h)? * 3600 + num(m)? * 60 + num(s)?,
                _ => return None,
            }
        }
    };
    Some(days * 86_400 + secs)
}

/// Parses a memory size into MiB. A bare number is MiB (as in Slurm);
/// suffixes `K`, `M`, `G`, `T` (optionally followed by `B` or `iB`) scale it.
pub fn parse_memory_mib(field: &str, text: &str) -> Result<u64> {
    let t = text.trim();
    let err = || {
        ValidationError::new(
            "invalid-memory",
            field,
            format!("`{text}` is not a memory size (examples: 512M, 2G, 1024)"),
        )
    };
    let digits_end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (n, unit) = t.split_at(digits_end);
    let n: f64 = n.parse().map_err(|_| err())?;
    let unit = unit.trim().to_ascii_uppercase();
    let unit = unit
        .strip_suffix("IB")
        .or_else(|| unit.strip_suffix('B'))
        .unwrap_or(&unit);
    let factor = match unit {
        "" | "M" => 1.0,
        "K" => 1.0 / 1024.0,
        "G" => 1024.0,
        "T" => 1024.0 * 1024.0,
        _ => return Err(err()),
    };
    let mib = (n * factor).ceil();
    if !mib.is_finite() || !(0.0..=1e12).contains(&mib) {
        return Err(err());
    }
    Ok(mib as u64)
}

/// Splits `KEY=VALUE`; the key must be a valid environment variable name.
pub fn parse_env_pair(field: &str, text: &str) -> Result<(String, String)> {
    let Some((k, v)) = text.split_once('=') else {
        return Err(ValidationError::new(
            "invalid-env",
            field,
            format!("`{text}` is not KEY=VALUE"),
        ));
    };
    validate_env_name(field, k)?;
    Ok((k.to_string(), v.to_string()))
}

/// Checks that `name` is a portable environment variable name.
pub fn validate_env_name(field: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && !name.as_bytes()[0].is_ascii_digit()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new(
            "invalid-env",
            field,
            format!("`{name}` is not a valid environment variable name"),
        ))
    }
}

/// Writes every number with no fractional part (`56.0`, `1e3`) as the
/// integer it is, so that whole-number fields take them: JSON (and JSON
/// Schema's `integer`) does not tell `56.0` from `56`.
pub fn integral_numbers(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Number(n) if !n.is_i64() && !n.is_u64() => {
            if let Some(f) = n.as_f64()
                && f.fract() == 0.0
                && f.abs() < 9.0e15
            {
                *v = Value::from(f as i64);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(integral_numbers),
        Value::Object(o) => o.values_mut().for_each(integral_numbers),
        _ => {}
    }
}

/// The candidate closest to `word` (case-insensitive edit distance of at
/// most a third of its length, at least 1), for "did you mean" hints.
pub fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let w: Vec<char> = word.to_lowercase().chars().collect();
    let limit = (w.len() / 3).max(1);
    candidates
        .iter()
        .map(|c| {
            (
                edit_distance(&w, &c.to_lowercase().chars().collect::<Vec<_>>()),
                *c,
            )
        })
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance.
fn edit_distance(a: &[char], b: &[char]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    #[test]
    fn suggestions() {
        let states = ["RUNNING", "RUNNABLE", "FAILED", "PENDING"];
        assert_eq!(super::closest("RUNING", &states), Some("RUNNING"));
        assert_eq!(super::closest("faild", &states), Some("FAILED"));
        assert_eq!(super::closest("XYZ", &states), None);
    }

    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("t", "90s", false).unwrap(), 90);
        assert_eq!(parse_duration("t", "10m", false).unwrap(), 600);
        assert_eq!(parse_duration("t", "1h30m", false).unwrap(), 5400);
        assert_eq!(parse_duration("t", "3600", false).unwrap(), 3600);
        assert_eq!(parse_duration("t", "2d", false).unwrap(), 172_800);
        assert_eq!(parse_duration("t", "1:30", false).unwrap(), 90);
        assert_eq!(parse_duration("t", "1-02:03:04", false).unwrap(), 93_784);
        assert_eq!(parse_duration("t", "30", true).unwrap(), 1800);
        assert_eq!(parse_duration("t", "2-12", true).unwrap(), 216_000);
        assert_eq!(parse_duration("t", "2-12:30", true).unwrap(), 217_800);
        for bad in ["", "abc", "10x", "1h30", "-5", "1:2:3:4"] {
            let e = parse_duration("timeout", bad, false).unwrap_err();
            assert_eq!(e.code, "invalid-duration");
            assert_eq!(e.field.as_deref(), Some("timeout"));
        }
    }

    #[test]
    fn memory() {
        assert_eq!(parse_memory_mib("m", "512M").unwrap(), 512);
        assert_eq!(parse_memory_mib("m", "2G").unwrap(), 2048);
        assert_eq!(parse_memory_mib("m", "2GiB").unwrap(), 2048);
        assert_eq!(parse_memory_mib("m", "1.5g").unwrap(), 1536);
        assert_eq!(parse_memory_mib("m", "100").unwrap(), 100);
        assert_eq!(parse_memory_mib("m", "1024K").unwrap(), 1);
        for bad in ["", "G", "12X", "-1G", "1e400G"] {
            assert!(parse_memory_mib("m", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn env_pairs() {
        assert_eq!(
            parse_env_pair("env", "A_1=x=y").unwrap(),
            ("A_1".into(), "x=y".into())
        );
        assert!(parse_env_pair("env", "novalue").is_err());
        assert!(parse_env_pair("env", "1A=b").is_err());
        assert!(parse_env_pair("env", "A-B=b").is_err());
    }
}
