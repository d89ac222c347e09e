//! What of a job's specification people are shown: environment values that
//! look like secrets are masked in every view, and listings abridge long
//! commands. The stored specification is never changed; a worker running
//! the job receives it whole.
//!
//! A variable is masked when its name looks like a secret (`GH_PAT`,
//! `AWS_SECRET_ACCESS_KEY`, `DB_PASSWORD`, `API_TOKEN`) or its value does
//! (a URL with a password in it, a private key, a token with a well-known
//! prefix such as `ghp_`, `xoxb-`, `AKIA` or Trestle's own `trs_`). Only
//! the password of a URL is masked, so `postgres://user:********@db/x`
//! still says where it points.

use crate::batch::job::Command;
use crate::batch::limits::{LISTED_COMMAND_BYTES, prefix};
use std::collections::BTreeMap;

/// What a masked value is shown as.
pub const MASK: &str = "********";

/// Words that, as one `_`-separated part of a variable's name, mark it as
/// a secret.
const SECRET_PARTS: &[&str] = &[
    "PASSWORD",
    "PASSWD",
    "PASS",
    "PWD",
    "SECRET",
    "SECRETS",
    "TOKEN",
    "TOKENS",
    "KEY",
    "APIKEY",
    "PAT",
    "CREDENTIAL",
    "CREDENTIALS",
    "CREDS",
    "AUTH",
    "PRIVATE",
    "COOKIE",
    "SIGNATURE",
    "CERT",
];

/// Parts that look like [`SECRET_PARTS`] but name something public.
const PUBLIC_NAMES: &[&str] = &["PWD", "OLDPWD", "KEYTAB_PATH", "SSH_AUTH_SOCK"];

/// Prefixes of well-known tokens.
const TOKEN_PREFIXES: &[&str] = &[
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "glpat-",
    "xoxb-",
    "xoxp-",
    "xoxa-",
    "xoxs-",
    "sk-",
    "trs_",
    "AKIA",
    "ASIA",
    "-----BEGIN",
];

/// Whether a variable's name looks like it holds a secret.
pub fn secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    if PUBLIC_NAMES.contains(&upper.as_str()) {
        return false;
    }
    upper.split('_').any(|part| SECRET_PARTS.contains(&part))
        || upper.ends_with("PASSWORD")
        || upper.ends_with("TOKEN")
        || upper.ends_with("SECRET")
        || upper.ends_with("APIKEY")
}

/// The value as shown, when it must be masked: the whole value, or only the
/// password part of a URL.
pub fn masked_value(name: &str, value: &str) -> Option<String> {
    if value.is_empty() {
        return None;
    }
    if secret_name(name) {
        return Some(MASK.to_string());
    }
    if TOKEN_PREFIXES
        .iter()
        .any(|p| value.trim_start().starts_with(p) && value.len() >= p.len() + 8)
    {
        return Some(MASK.to_string());
    }
    url_without_password(value)
}

/// `scheme://user:pass@host/...` with the password masked, if `value` holds
/// such a URL anywhere.
fn url_without_password(value: &str) -> Option<String> {
    let start = value.find("://")? + 3;
    let rest = &value[start..];
    let end = rest.find(['/', '?', '#', ' ']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let at = authority.rfind('@')?;
    let colon = authority[..at].find(':')?;
    if colon + 1 == at {
        return None;
    }
    let pass_start = start + colon + 1;
    let pass_end = start + at;
    Some(format!(
        "{}{MASK}{}",
        &value[..pass_start],
        &value[pass_end..]
    ))
}

/// Masks every variable of `env` that looks like a secret; returns how many
/// were masked.
pub fn mask_env(env: &mut BTreeMap<String, String>) -> usize {
    let mut n = 0;
    for (k, v) in env.iter_mut() {
        if let Some(m) = masked_value(k, v) {
            *v = m;
            n += 1;
        }
    }
    n
}

/// Shortens `command` to about [`LISTED_COMMAND_BYTES`] for a listing;
/// returns whether anything was cut. A cut script ends in `…`; cut
/// arguments end in one `…` argument.
pub fn abridge_command(command: &mut Command) -> bool {
    match command {
        Command::Shell(s) => {
            if s.len() <= LISTED_COMMAND_BYTES {
                return false;
            }
            *s = format!("{}…", prefix(s, LISTED_COMMAND_BYTES));
            true
        }
        Command::Argv(v) => {
            let mut used = 0;
            let mut keep = 0;
            for a in v.iter() {
                if used + a.len() > LISTED_COMMAND_BYTES {
                    break;
                }
                used += a.len();
                keep += 1;
            }
            if keep == v.len() {
                return false;
            }
            let cut = keep.max(1);
            if cut == 1 && keep == 0 {
                v[0] = prefix(&v[0], LISTED_COMMAND_BYTES).to_string();
            }
            v.truncate(cut);
            v.push("…".to_string());
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reviews_variables_are_masked() {
        let mut env: BTreeMap<String, String> = [
            ("DATABASE_URL", "postgres://user:hunter2@db/x"),
            ("GH_PAT", "ghp_secret123"),
            ("HOME", "/home/u"),
            ("PWD", "/home/u/run"),
            ("AWS_SECRET_ACCESS_KEY", "abc"),
            ("MY_TOKEN", "t"),
            ("SLACK", "xoxb-1234567890-abc"),
            ("MONKEY", "banana"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(mask_env(&mut env), 5);
        assert_eq!(env["DATABASE_URL"], "postgres://user:********@db/x");
        assert_eq!(env["GH_PAT"], MASK);
        assert_eq!(env["AWS_SECRET_ACCESS_KEY"], MASK);
        assert_eq!(env["MY_TOKEN"], MASK);
        assert_eq!(env["SLACK"], MASK);
        assert_eq!(env["HOME"], "/home/u");
        assert_eq!(env["PWD"], "/home/u/run");
        assert_eq!(env["MONKEY"], "banana");
        assert!(
            !env.values()
                .any(|v| v.contains("hunter2") || v.contains("secret123"))
        );
    }

    #[test]
    fn urls_without_passwords_are_shown() {
        assert_eq!(masked_value("URL", "https://example.org/a:b@c"), None);
        assert_eq!(masked_value("URL", "https://user@example.org/"), None);
        assert_eq!(
            masked_value("X", "redis://:pw@h:6379").as_deref(),
            Some("redis://:********@h:6379")
        );
    }

    #[test]
    fn listings_abridge_long_commands() {
        let mut c = Command::Shell("é".repeat(1000));
        assert!(abridge_command(&mut c));
        let Command::Shell(s) = &c else { panic!() };
        assert!(s.len() <= LISTED_COMMAND_BYTES + 3 && s.ends_with('…'));
        let mut a = Command::Argv(vec!["x".repeat(400), "y".repeat(400)]);
        assert!(abridge_command(&mut a));
        assert_eq!(a, Command::Argv(vec!["x".repeat(400), "…".into()]));
        let mut one = Command::Argv(vec!["z".repeat(2000)]);
        assert!(abridge_command(&mut one));
        let Command::Argv(v) = &one else { panic!() };
        assert_eq!(v[0].len(), LISTED_COMMAND_BYTES);
        let mut short = Command::Argv(vec!["echo".into(), "hi".into()]);
        assert!(!abridge_command(&mut short));
    }
}
