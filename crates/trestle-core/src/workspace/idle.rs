//! When a workspace is idle, and when it has reached its lifetime.
//!
//! An open JupyterLab tab polls `/api/kernels`, `/api/sessions`,
//! `/api/contents` and more for ever, and saves its layout
//! (`PUT /lab/api/workspaces/...`) every ten seconds, so proxied traffic
//! alone never goes quiet. Requests that only read the app's API ([`is_polling`]) do not
//! count; page loads, writes (saving a notebook) and the app's own signal
//! do: for Jupyter, a kernel's `last_activity` and a busy kernel. Attached
//! shells and port forwards count while they carry bytes.

use super::kind::ActivitySource;

/// True for a proxied request that is the app's background polling rather
/// than a person's action: a `GET`/`HEAD` of the app's API (`api/` or
/// `lab/api/` under the workspace's prefix), for apps whose activity
/// comes from elsewhere. `path` is relative to the prefix (no leading `/`).
pub fn is_polling(source: ActivitySource, method: &str, path: &str) -> bool {
    let read = method.eq_ignore_ascii_case("GET") || method.eq_ignore_ascii_case("HEAD");
    match source {
        ActivitySource::Jupyter => {
            // JupyterLab also saves its layout (`PUT lab/api/workspaces/...`)
            // every ten seconds while a tab is open.
            path.starts_with("lab/api/workspaces")
                || (read
                    && (path.starts_with("api/") || path.starts_with("lab/api/") || path == "api"))
        }
        // Without an app signal, every request counts except the proxy's
        // own readiness probes (which never pass through here).
        ActivitySource::Traffic => false,
    }
}

/// The facts about a running workspace's activity (ms since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Activity {
    /// When it became RUNNING.
    pub running_since: i64,
    /// The last proxied request that counts (not polling).
    pub last_request: Option<i64>,
    /// The app's own last activity (Jupyter kernels), as the worker saw it.
    pub last_app: Option<i64>,
    /// The app reports work in progress (a busy kernel).
    pub app_busy: bool,
    /// The last byte through an attached shell or port forward.
    pub last_attached: Option<i64>,
    /// Shells or forwards attached now.
    pub attached: u32,
}

impl Activity {
    /// The last time anything counted as activity.
    pub fn last(&self) -> i64 {
        [self.last_request, self.last_app, self.last_attached]
            .into_iter()
            .flatten()
            .fold(self.running_since, i64::max)
    }
}

/// Why a running workspace should be stopped now, if it should.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Keep it.
    Keep,
    /// Idle for the timeout.
    Idle,
    /// Past its lifetime.
    Lifetime,
}

/// Decides at `now` for a workspace with `idle_timeout_secs` (0 = never)
/// whose lifetime ends at `deadline`.
pub fn verdict(now: i64, a: &Activity, idle_timeout_secs: u64, deadline: i64) -> Verdict {
    if now >= deadline {
        return Verdict::Lifetime;
    }
    if idle_timeout_secs == 0 || a.app_busy || a.attached > 0 {
        return Verdict::Keep;
    }
    let quiet = now.saturating_sub(a.last());
    if quiet >= (idle_timeout_secs as i64).saturating_mul(1000) {
        Verdict::Idle
    } else {
        Verdict::Keep
    }
}

/// The new lifetime deadline after extending by `secs`, within the
/// configuration's total extension allowance: `(deadline, extended)`.
pub fn extend(
    started: i64,
    lifetime_secs: u64,
    extended_secs: u64,
    by_secs: u64,
    max_extension_secs: u64,
) -> Result<(i64, u64), String> {
    let total = extended_secs.saturating_add(by_secs);
    if total > max_extension_secs {
        return Err(format!(
            "this configuration allows extending by {} in all; {} is left",
            human_secs(max_extension_secs),
            human_secs(max_extension_secs.saturating_sub(extended_secs)),
        ));
    }
    let deadline =
        started.saturating_add((lifetime_secs.saturating_add(total) as i64).saturating_mul(1000));
    Ok((deadline, total))
}

/// `3h`, `1h30m`, `45m`, `20s`.
pub fn human_secs(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    match (h, m, s) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, 0, _) => format!("{h}h"),
        (h, m, _) => format!("{h}h{m}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jupyter_polling_does_not_count() {
        let j = ActivitySource::Jupyter;
        assert!(is_polling(j, "GET", "api/kernels"));
        assert!(is_polling(j, "GET", "lab/api/workspaces/x"));
        assert!(!is_polling(j, "PUT", "api/contents/a.ipynb"));
        assert!(is_polling(j, "PUT", "lab/api/workspaces/default"));
        assert!(!is_polling(j, "GET", "lab/tree/a.ipynb"));
        assert!(!is_polling(ActivitySource::Traffic, "GET", "api/x"));
    }

    #[test]
    fn idle_and_lifetime() {
        let a = Activity {
            running_since: 0,
            last_request: Some(10_000),
            ..Default::default()
        };
        assert_eq!(verdict(69_999, &a, 60, i64::MAX), Verdict::Keep);
        assert_eq!(verdict(70_000, &a, 60, i64::MAX), Verdict::Idle);
        assert_eq!(verdict(70_000, &a, 0, i64::MAX), Verdict::Keep);
        let busy = Activity {
            app_busy: true,
            ..a
        };
        assert_eq!(verdict(1_000_000, &busy, 60, i64::MAX), Verdict::Keep);
        let shell = Activity { attached: 1, ..a };
        assert_eq!(verdict(1_000_000, &shell, 60, i64::MAX), Verdict::Keep);
        assert_eq!(verdict(5, &busy, 60, 5), Verdict::Lifetime);
    }

    #[test]
    fn extension_is_bounded() {
        assert_eq!(extend(0, 3600, 0, 1800, 3600).unwrap(), (5_400_000, 1800));
        assert!(extend(0, 3600, 1800, 3600, 3600).is_err());
    }
}
