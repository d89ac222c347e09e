//! `[notify]` in `trestle.toml`: the secrets keyring, the portal's
//! address for links, the personal email target, the outbox's tick and
//! retry schedule.
//!
//! ```toml
//! [notify]
//! keyring = "/etc/trestle/keyring"   # default: DATA/keyring (`up` creates it)
//! base_url = "https://trestle.example.org"
//! personal_email_target = "email"
//! tick = "200ms"
//! retry_first = "1s"
//! retry_max = "15m"
//! give_up_after = "24h"
//! send_timeout = "10s"
//! ```
//!
//! `TRESTLE_NOTIFY_KEYRING` gives the keyring itself (`ID BASE64;...`,
//! the last key current), `TRESTLE_NOTIFY_KEYRING_FILE` its file.

use anyhow::{Result, bail};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;
use trestle_server::config::NotifyConfig;

/// `[notify]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyFile {
    /// The keyring file (default `<data_dir>/keyring`).
    pub keyring: Option<PathBuf>,
    /// The portal's public URL, for links in messages.
    pub base_url: Option<String>,
    /// The email target carrying personal email (default `email`).
    pub personal_email_target: Option<String>,
    /// How often the outbox looks for new events (default `200ms`).
    pub tick: Option<String>,
    /// The first retry's delay (default `1s`).
    pub retry_first: Option<String>,
    /// The longest delay between retries (default `15m`).
    pub retry_max: Option<String>,
    /// A delivery failing this long is dead-lettered (default `24h`).
    pub give_up_after: Option<String>,
    /// Longest wait for a receiver's answer (default `10s`).
    pub send_timeout: Option<String>,
}

/// A duration with a unit: `250ms`, `2s`, `15m`, `24h`, `1d`.
pub fn millis(field: &str, text: &str) -> Result<i64> {
    let t = text.trim();
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: i64 = match num.parse() {
        Ok(n) => n,
        Err(_) => bail!("{field}: `{text}` is not a duration like 250ms, 2s, 15m or 24h"),
    };
    let scale = match unit {
        "ms" => 1,
        "s" | "" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => bail!("{field}: `{text}` is not a duration like 250ms, 2s, 15m or 24h"),
    };
    Ok(n.saturating_mul(scale))
}

/// Validates `[notify]` (and the environment) into the server's settings.
pub fn build(
    f: NotifyFile,
    data_dir: &Path,
    base: &Path,
    create_keyring: bool,
    env: impl Fn(&str) -> Option<String>,
) -> Result<NotifyConfig> {
    let mut c = NotifyConfig {
        keyring_file: Some(data_dir.join("keyring")),
        keyring_text: env("TRESTLE_NOTIFY_KEYRING"),
        create_keyring,
        ..Default::default()
    };
    if let Some(p) = env("TRESTLE_NOTIFY_KEYRING_FILE")
        .map(PathBuf::from)
        .or(f.keyring)
    {
        c.keyring_file = Some(if p.is_absolute() { p } else { base.join(p) });
    }
    let s = &mut c.settings;
    if let Some(u) = f.base_url {
        if !(u.starts_with("https://") || u.starts_with("http://")) {
            bail!("notify.base_url: `{u}` must start with https:// or http://");
        }
        s.base_url = Some(u.trim_end_matches('/').to_string());
    }
    if let Some(t) = f.personal_email_target {
        trestle_core::notify::target::check_name(&t, "notify.personal_email_target")
            .map_err(|e| anyhow::anyhow!("notify.personal_email_target: {}", e.message))?;
        s.personal_email_target = t;
    }
    if let Some(t) = f.tick {
        let ms = millis("notify.tick", &t)?;
        if !(10..=60_000).contains(&ms) {
            bail!("notify.tick: between 10ms and 1m");
        }
        s.tick = Duration::from_millis(ms as u64);
    }
    if let Some(t) = f.retry_first {
        s.backoff.base_ms = millis("notify.retry_first", &t)?.max(1);
    }
    if let Some(t) = f.retry_max {
        s.backoff.max_ms = millis("notify.retry_max", &t)?.max(1);
    }
    if let Some(t) = f.give_up_after {
        s.backoff.give_up_after_ms = millis("notify.give_up_after", &t)?.max(1);
    }
    if let Some(t) = f.send_timeout {
        let ms = millis("notify.send_timeout", &t)?.max(10) as u64;
        c.sender.timeout = Duration::from_millis(ms);
        c.sender.connect_timeout = c.sender.connect_timeout.min(c.sender.timeout);
    }
    let s = &mut c.settings;
    if s.backoff.max_ms < s.backoff.base_ms {
        bail!("notify.retry_max: shorter than notify.retry_first");
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_settings_are_checked() {
        assert_eq!(millis("t", "250ms").unwrap(), 250);
        assert_eq!(millis("t", "2s").unwrap(), 2000);
        assert_eq!(millis("t", "24h").unwrap(), 86_400_000);
        assert!(millis("t", "soon").is_err());
        assert!(millis("t", "5y").is_err());
        let none = |_: &str| None;
        let c = build(
            NotifyFile::default(),
            Path::new("/d"),
            Path::new("/b"),
            true,
            none,
        )
        .unwrap();
        assert_eq!(c.keyring_file.as_deref(), Some(Path::new("/d/keyring")));
        assert!(c.create_keyring);
        let f = NotifyFile {
            keyring: Some("keys/ring".into()),
            base_url: Some("https://t.example/".into()),
            retry_first: Some("100ms".into()),
            retry_max: Some("1s".into()),
            give_up_after: Some("5s".into()),
            ..Default::default()
        };
        let c = build(f, Path::new("/d"), Path::new("/b"), false, none).unwrap();
        assert_eq!(c.keyring_file.as_deref(), Some(Path::new("/b/keys/ring")));
        assert_eq!(c.settings.base_url.as_deref(), Some("https://t.example"));
        assert_eq!(c.settings.backoff.give_up_after_ms, 5000);
        let bad = NotifyFile {
            retry_first: Some("2s".into()),
            retry_max: Some("1s".into()),
            ..Default::default()
        };
        assert!(build(bad, Path::new("/d"), Path::new("/b"), false, none).is_err());
        let env = |k: &str| (k == "TRESTLE_NOTIFY_KEYRING").then(|| "a b".to_string());
        let c = build(
            NotifyFile::default(),
            Path::new("/d"),
            Path::new("/b"),
            false,
            env,
        )
        .unwrap();
        assert_eq!(c.keyring_text.as_deref(), Some("a b"));
    }
}
