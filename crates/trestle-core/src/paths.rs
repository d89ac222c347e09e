//! Normalisation of user-supplied object keys and relative paths, so nothing
//! a user sends can escape the prefix it is confined to.

use crate::error::{Result, ValidationError};

/// Normalises a relative path: collapses `.` and empty segments, rejects
/// absolute paths, `..`, backslashes and control characters. Returns the
/// `/`-joined path, never empty.
pub fn normalize_relative(field: &str, path: &str) -> Result<String> {
    let bad = |why: &str| {
        ValidationError::new(
            "invalid-path",
            field,
            format!("path `{}` {why}", path.escape_debug()),
        )
    };
    if path.starts_with('/') {
        return Err(bad("must be relative, not absolute"));
    }
    if path.chars().any(|c| c.is_control() || c == '\\') {
        return Err(bad("contains a control character or a backslash"));
    }
    // Characters that reorder how a name is displayed (`evil\u{202e}txt.exe`).
    if path.chars().any(|c| {
        matches!(c, '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    }) {
        return Err(bad("contains a bidirectional control character"));
    }
    let mut parts = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => return Err(bad("must not contain `..`")),
            s if s.len() > 255 => return Err(bad("has a part longer than 255 bytes")),
            s => parts.push(s),
        }
    }
    if parts.is_empty() {
        return Err(bad("is empty"));
    }
    if path.len() > 1024 {
        return Err(bad("is longer than 1024 bytes"));
    }
    Ok(parts.join("/"))
}

/// Joins a trusted prefix and an untrusted relative path.
pub fn confine(prefix: &str, field: &str, path: &str) -> Result<String> {
    let rel = normalize_relative(field, path)?;
    let prefix = prefix.trim_end_matches('/');
    Ok(format!("{prefix}/{rel}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_mislead_or_overflow_are_refused() {
        let e = normalize_relative("path", "report\u{202e}fdp.exe").unwrap_err();
        assert!(e.message.contains("bidirectional"), "{}", e.message);
        assert!(normalize_relative("path", "a\u{2066}b").is_err());
        let e = normalize_relative("path", &format!("dir/{}", "n".repeat(256))).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("path"));
        assert!(e.message.contains("255"), "{}", e.message);
        assert!(normalize_relative("path", &"n".repeat(255)).is_ok());
        assert!(normalize_relative("path", "résumé/数据.txt").is_ok());
    }
    use proptest::prelude::*;

    #[test]
    fn normalises() {
        assert_eq!(normalize_relative("p", "a/./b//c").unwrap(), "a/b/c");
        assert_eq!(confine("jobs/1/", "p", "x/y").unwrap(), "jobs/1/x/y");
        for bad in ["/etc/passwd", "../x", "a/../../b", "", ".", "a\\b", "a\0b"] {
            let e = normalize_relative("path", bad).unwrap_err();
            assert_eq!(e.code, "invalid-path");
        }
    }

    proptest! {
        #[test]
        fn never_escapes(s in "[a-z./]{0,20}") {
            if let Ok(p) = confine("root", "p", &s) {
                prop_assert!(p.starts_with("root/"));
                prop_assert!(!p.split('/').any(|seg| seg == ".." || seg.is_empty()));
            }
        }
    }
}
