//! Quota arithmetic. A study stores each distinct content once
//! (objects are addressed by SHA-256), and every version kept refers to
//! its objects, so a study's usage is the size of the distinct objects of
//! all its kept versions; a project's is the sum over its studies.

use crate::error::ValidationError;
use std::collections::BTreeMap;

/// Bytes a new version adds: the sizes of its objects the study does not
/// store yet (`stored` says whether it does).
pub fn added_bytes(objects: &BTreeMap<&str, u64>, stored: impl Fn(&str) -> bool) -> u64 {
    objects
        .iter()
        .filter(|(sha, _)| !stored(sha))
        .map(|(_, size)| *size)
        .sum()
}

/// Human-readable bytes (`1.5 GiB`).
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Checks that `used + adding` stays within `limit` (`None`: no limit);
/// `what` names the thing limited (`study \`x\``, `project \`p\``).
pub fn check(
    what: &str,
    used: u64,
    adding: u64,
    limit: Option<u64>,
) -> Result<(), ValidationError> {
    let Some(limit) = limit else { return Ok(()) };
    if used.checked_add(adding).is_some_and(|t| t <= limit) {
        return Ok(());
    }
    Err(ValidationError::new(
        "quota-exceeded",
        "",
        format!(
            "the quota of {what} would be exceeded: it stores {} of {} (every version kept counts), and this change adds {} — delete files or old versions, or ask an admin for more",
            human(used),
            human(limit),
            human(adding)
        ),
    ))
}

/// Parses a quota such as `10G`, `500M`, `1T`, `1024` (bytes), `none`.
pub fn parse(field: &str, s: &str) -> Result<Option<u64>, ValidationError> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("none") || t.is_empty() {
        return Ok(None);
    }
    let (num, mult) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        None => (t, 1u64),
        Some((i, _)) => {
            let mult = match t[i..]
                .trim()
                .to_ascii_lowercase()
                .trim_end_matches("ib")
                .trim_end_matches('b')
            {
                "" => 1,
                "k" => 1 << 10,
                "m" => 1 << 20,
                "g" => 1 << 30,
                "t" => 1 << 40,
                _ => 0,
            };
            (&t[..i], mult)
        }
    };
    match num.parse::<u64>().ok().and_then(|n| n.checked_mul(mult)) {
        Some(v) if mult > 0 => Ok(Some(v)),
        _ => Err(ValidationError::new(
            "invalid-quota",
            field,
            format!(
                "`{}` is not a size such as `10G`, `500M` or `none`",
                s.escape_debug()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic() {
        let objs: BTreeMap<&str, u64> = [("a", 10), ("b", 5)].into_iter().collect();
        assert_eq!(added_bytes(&objs, |s| s == "a"), 5);
        assert_eq!(added_bytes(&objs, |_| false), 15);
        check("study `x`", 90, 10, Some(100)).unwrap();
        let e = check("study `x`", 90, 11, Some(100)).unwrap_err();
        assert_eq!(e.code, "quota-exceeded");
        assert!(
            e.message.contains("study `x`") && e.message.contains("100 B"),
            "{}",
            e.message
        );
        check("p", u64::MAX, u64::MAX, None).unwrap();
        assert!(check("p", u64::MAX, 1, Some(u64::MAX)).is_err());
        assert_eq!(human(1536 * 1024 * 1024), "1.5 GiB");
    }

    #[test]
    fn parses() {
        assert_eq!(parse("q", "10G").unwrap(), Some(10 << 30));
        assert_eq!(parse("q", "500MiB").unwrap(), Some(500 << 20));
        assert_eq!(parse("q", "1024").unwrap(), Some(1024));
        assert_eq!(parse("q", "none").unwrap(), None);
        assert_eq!(parse("q", "10X").unwrap_err().field.as_deref(), Some("q"));
        assert!(parse("q", "99999999999999999999T").is_err());
    }
}
