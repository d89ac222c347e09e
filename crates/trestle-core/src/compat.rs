//! Version skew between the server and its workers. The policy:
//!
//! - A worker of the server's own minor version, or of the minor version
//!   before it (`0.4.x` workers on a `0.5.y` server; any patch level), keeps
//!   working: the wire protocol only grows optional fields whose absence
//!   means what the older version did (a lease request without `kinds`
//!   asks for batch tasks only).
//! - Any other worker (older than that, newer than the server, another
//!   major version, or an unreadable version) is told to drain and exit:
//!   registering and leasing answer `409 upgrade-required`, while its
//!   reports are still accepted, so a job it runs is never failed by the
//!   upgrade. A worker that hears `upgrade-required` stops leasing, lets
//!   its running jobs finish and report, deregisters and exits 0.
//!
//! Slurm pilots run the binary their job script names, so a pilot left
//! from before an upgrade follows the same rule.

/// What the server does with a worker of some version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compat {
    /// It keeps working.
    Compatible,
    /// It must drain and exit; the sentence says why.
    Drain(String),
}

fn parse(v: &str) -> Option<(u64, u64, u64)> {
    let core = v.split(['-', '+']).next()?;
    let mut it = core.split('.');
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    let patch = it.next().map_or(Some(0), |p| p.parse().ok())?;
    it.next().is_none().then_some((major, minor, patch))
}

/// The policy for a worker of version `worker` on a server of version
/// `server`.
pub fn worker_compat(server: &str, worker: &str) -> Compat {
    let (Some(s), Some(w)) = (parse(server), parse(worker)) else {
        return Compat::Drain(format!(
            "this server ({server}) cannot read the worker's version `{worker}`; run a worker of version {server}"
        ));
    };
    let same_line = w.0 == s.0 && (w.1 == s.1 || w.1 + 1 == s.1);
    if same_line {
        return Compat::Compatible;
    }
    if (w.0, w.1) > (s.0, s.1) {
        Compat::Drain(format!(
            "this worker ({worker}) is newer than the server ({server}); upgrade the server first, or run a worker of version {server}"
        ))
    } else {
        Compat::Drain(format!(
            "this worker ({worker}) is too old for the server ({server}): workers may be at most one minor version behind; upgrade the worker"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_minor_version_behind_keeps_working() {
        assert_eq!(worker_compat("0.5.2", "0.5.0"), Compat::Compatible);
        assert_eq!(worker_compat("0.5.2", "0.5.9"), Compat::Compatible);
        assert_eq!(worker_compat("0.5.2", "0.4.7"), Compat::Compatible);
        assert_eq!(worker_compat("1.0.0", "1.0.0-rc.1"), Compat::Compatible);
        assert_eq!(worker_compat("2.3.0", "2.2.0"), Compat::Compatible);
    }

    #[test]
    fn everything_else_drains() {
        for (server, worker, says) in [
            ("0.5.2", "0.3.1", "too old"),
            ("0.5.2", "0.6.0", "newer"),
            ("1.0.0", "0.9.0", "too old"),
            ("1.0.0", "2.0.0", "newer"),
            ("0.5.2", "test", "cannot read"),
            ("0.5.2", "", "cannot read"),
        ] {
            match worker_compat(server, worker) {
                Compat::Drain(m) => assert!(m.contains(says), "{worker}: {m}"),
                Compat::Compatible => panic!("{worker} on {server} must drain"),
            }
        }
    }
}
