//! Jobs as Slurm's commands print them, for the drop-in `squeue`, `sacct`
//! and `scontrol` (docs/slurm.md): job ids (`ID_INDEX` for array
//! children), state names and codes, pending reasons, exit codes, times
//! and sizes, and the `%` field codes of `squeue -o`. Pure.

use crate::JobState;
use crate::api::JobView;
use crate::batch::workflow::JobKind;

/// Slurm's job id: `PARENT_INDEX` for an array child; for an array that
/// still has children to create, `ID_[INDICES]`; else the id.
pub fn job_id(j: &JobView) -> String {
    match (j.flow.parent, j.flow.array_index) {
        (Some(p), Some(i)) => format!("{p}_{i}"),
        _ if j.flow.kind == JobKind::Array => match &j.spec.flow.array {
            Some(a) => format!("{}_[{a}]", j.id),
            None => j.id.to_string(),
        },
        _ => j.id.to_string(),
    }
}

/// The Slurm state name (`sacct`, `squeue -t`, `%T`).
pub fn state_name(j: &JobView) -> String {
    let special = j
        .reason
        .as_deref()
        .and_then(crate::AttemptReason::parse)
        .and_then(crate::AttemptReason::slurm_state);
    match j.state {
        JobState::Submitted | JobState::Pending | JobState::Runnable => "PENDING".into(),
        JobState::Starting => "CONFIGURING".into(),
        JobState::Running => "RUNNING".into(),
        JobState::Succeeded => "COMPLETED".into(),
        JobState::Failed => match (special, j.reason.as_deref()) {
            (Some((name, _)), _) => name.into(),
            (None, Some("worker-lost" | "lost")) => "NODE_FAIL".into(),
            _ => "FAILED".into(),
        },
        JobState::Cancelled => "CANCELLED".into(),
    }
}

/// The two-letter code (`squeue`'s `ST`, `%t`).
pub fn state_code(j: &JobView) -> &'static str {
    match state_name(j).as_str() {
        "PENDING" => "PD",
        "CONFIGURING" => "CF",
        "RUNNING" => "R",
        "COMPLETED" => "CD",
        "CANCELLED" => "CA",
        "TIMEOUT" => "TO",
        "OUT_OF_MEMORY" => "OOM",
        "NODE_FAIL" => "NF",
        _ => "F",
    }
}

/// Parses a state as `squeue -t`/`sacct -s` take it (names or codes, any
/// case): the Trestle states it covers.
pub fn parse_state(s: &str) -> Option<Vec<JobState>> {
    let up = s.trim().to_ascii_uppercase();
    Some(match up.as_str() {
        "PD" | "PENDING" => vec![JobState::Submitted, JobState::Pending, JobState::Runnable],
        "R" | "RUNNING" => vec![JobState::Running],
        "CF" | "CONFIGURING" => vec![JobState::Starting],
        "CG" | "COMPLETING" => vec![],
        "CD" | "COMPLETED" => vec![JobState::Succeeded],
        "CA" | "CANCELLED" => vec![JobState::Cancelled],
        "F" | "FAILED" | "TO" | "TIMEOUT" | "OOM" | "OUT_OF_MEMORY" | "NF" | "NODE_FAIL" => {
            vec![JobState::Failed]
        }
        "ALL" => JobState::ALL.to_vec(),
        _ => return None,
    })
}

/// Why a waiting job waits, as Slurm names it (`squeue`'s reason).
pub fn pending_reason(j: &JobView) -> String {
    let r = j.reason.as_deref().unwrap_or("");
    if j.state == JobState::Pending && r.starts_with("queue `") {
        "PartitionDown".into()
    } else if r.starts_with("waiting on dependency") {
        "Dependency".into()
    } else if r.starts_with("array parallel limit") {
        "JobArrayTaskLimit".into()
    } else if r.starts_with("over budget") || r == crate::batch::why::OVER_BUDGET {
        "AssocGrpBillingMinutes".into()
    } else if r.starts_with("held") {
        "JobHeldUser".into()
    } else if r.starts_with("needs ") || r.starts_with("no capacity") || r.starts_with("no compute")
    {
        "Resources".into()
    } else if r.is_empty() {
        "None".into()
    } else {
        "Priority".into()
    }
}

/// `squeue`'s last column: the node while it runs, `(REASON)` while it
/// waits.
pub fn nodelist_reason(j: &JobView) -> String {
    match (&j.worker, j.state) {
        (Some(w), _) => node_of(w),
        (None, JobState::Submitted | JobState::Pending | JobState::Runnable) => {
            format!("({})", pending_reason(j))
        }
        _ => String::new(),
    }
}

/// A worker id's node: the host part of `host:pid` style ids, else the id.
fn node_of(worker: &str) -> String {
    worker.to_string()
}

/// Exit code as `sacct` prints it: `CODE:SIGNAL`.
pub fn exit_code(j: &JobView) -> String {
    match j.exit_code {
        Some(c) if c < 0 => format!("0:{}", -c),
        Some(c) if c > 128 && matches!(j.state, JobState::Cancelled) => format!("0:{}", c - 128),
        Some(c) => format!("{c}:0"),
        None if j.state == JobState::Cancelled && j.started_at.is_some() => "0:15".into(),
        None => "0:0".into(),
    }
}

/// Whole days, hours, minutes and seconds of a duration in ms.
fn dhms(ms: i64) -> (i64, i64, i64, i64) {
    let secs = ms.max(0) / 1000;
    (
        secs / 86_400,
        (secs % 86_400) / 3600,
        (secs % 3600) / 60,
        secs % 60,
    )
}

/// A duration as `squeue`'s TIME: `M:SS`, `H:MM:SS`, `D-HH:MM:SS`.
pub fn short_duration(ms: i64) -> String {
    match dhms(ms) {
        (0, 0, m, s) => format!("{m}:{s:02}"),
        (0, h, m, s) => format!("{h}:{m:02}:{s:02}"),
        (d, h, m, s) => format!("{d}-{h:02}:{m:02}:{s:02}"),
    }
}

/// A duration as `sacct`'s Elapsed: `HH:MM:SS`, `D-HH:MM:SS`.
pub fn long_duration(ms: i64) -> String {
    match dhms(ms) {
        (0, h, m, s) => format!("{h:02}:{m:02}:{s:02}"),
        (d, h, m, s) => format!("{d}-{h:02}:{m:02}:{s:02}"),
    }
}

/// Time used so far (or in all, once ended).
pub fn elapsed_ms(j: &JobView, now: i64) -> i64 {
    match (j.started_at, j.finished_at) {
        (Some(s), Some(f)) => f - s,
        (Some(s), None) => now - s,
        _ => 0,
    }
}

/// The time limit as Slurm prints it (`UNLIMITED` without one).
pub fn time_limit(j: &JobView) -> String {
    if j.spec.timeout_secs == 0 {
        "UNLIMITED".into()
    } else {
        short_duration(j.spec.timeout_secs as i64 * 1000)
    }
}

/// A time (ms since the epoch) as Slurm prints it, in UTC:
/// `2026-12-01T22:14:31`.
pub fn timestamp(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, mo, d) = crate::clock::civil(days);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// An optional time, `Unknown` when absent.
pub fn timestamp_or_unknown(ms: Option<i64>) -> String {
    ms.map(timestamp).unwrap_or_else(|| "Unknown".into())
}

/// Memory in MiB as Slurm prints a request (`512M`, `2G`).
pub fn mem(mib: u64) -> String {
    if mib >= 1024 && mib.is_multiple_of(1024) {
        format!("{}G", mib / 1024)
    } else {
        format!("{mib}M")
    }
}

/// The user a job belongs to.
pub fn user(j: &JobView) -> String {
    j.spec
        .owner
        .clone()
        .or_else(|| j.spec.flow.slurm.as_ref().and_then(|s| s.user.clone()))
        .unwrap_or_else(|| "nobody".into())
}

/// One `squeue -o` field code's value (`%i`, `%j`, ...), or `None` for a
/// code the drop-in does not know.
pub fn squeue_field(code: char, j: &JobView, now: i64) -> Option<String> {
    let array_id = || match (j.flow.parent, j.flow.array_index) {
        (Some(p), Some(_)) => p.to_string(),
        _ => j.id.to_string(),
    };
    Some(match code {
        'i' => job_id(j),
        // The job's own id, unique for each element of an array.
        'A' => j.id.to_string(),
        'a' => j.spec.project.clone().unwrap_or_default(),
        // The array's base id, and the element's index.
        'F' => array_id(),
        'K' => j
            .flow
            .array_index
            .map(|i| i.to_string())
            .unwrap_or_else(|| "N/A".into()),
        'j' => j.name.clone(),
        'u' => user(j),
        'P' => j.queue.clone(),
        'q' => "normal".into(),
        't' => state_code(j).into(),
        'T' => state_name(j),
        'M' => short_duration(elapsed_ms(j, now)),
        'l' => time_limit(j),
        'L' => match j.spec.timeout_secs {
            0 => "UNLIMITED".into(),
            t => short_duration((t as i64 * 1000 - elapsed_ms(j, now)).max(0)),
        },
        'D' => "1".into(),
        'C' => j.spec.resources.cpus.to_string(),
        'c' => j.spec.resources.cpus.to_string(),
        'm' => mem(j.spec.resources.mem_mib),
        'b' => match j.spec.resources.gpus {
            0 => "N/A".into(),
            g => format!("gres:gpu:{g}"),
        },
        'R' => nodelist_reason(j),
        'r' => pending_reason(j),
        'N' => j.worker.as_deref().map(node_of).unwrap_or_default(),
        'V' => timestamp(j.submitted_at),
        'S' => j.started_at.map(timestamp).unwrap_or_else(|| "N/A".into()),
        'e' => j.finished_at.map(timestamp).unwrap_or_else(|| "N/A".into()),
        'o' => match &j.spec.command {
            crate::Command::Argv(v) => v.join(" "),
            crate::Command::Shell(s) => s.clone(),
        },
        'Z' => j
            .spec
            .flow
            .slurm
            .as_ref()
            .and_then(|s| s.chdir.clone().or(s.submit_dir.clone()))
            .unwrap_or_default(),
        'k' => String::new(),
        'p' => j.spec.priority.to_string(),
        'Q' => j.spec.priority.to_string(),
        'g' => user(j),
        'U' | 'G' => "0".into(),
        'E' => j
            .flow
            .dependencies
            .iter()
            .filter(|d| !d.resolved)
            .map(|d| format!("{}:{}", d.kind.as_str().replace('-', ""), d.job))
            .collect::<Vec<_>>()
            .join(","),
        'h' => "OK".into(),
        'B' => j
            .worker
            .as_deref()
            .map(node_of)
            .unwrap_or_else(|| "N/A".into()),
        'n' => String::new(),
        'O' => "0".into(),
        'z' => "*:*:*".into(),
        'y' => "0".into(),
        'w' => String::new(),
        'x' => String::new(),
        'v' => String::new(),
        'f' => "(null)".into(),
        'd' => "0".into(),
        'H' | 'I' | 'J' => "*".into(),
        _ => return None,
    })
}

/// The `%` code of an `squeue -O` field name (`JobID`, `Name`, ...).
pub fn squeue_long_field(name: &str) -> Option<char> {
    Some(match name.to_ascii_lowercase().as_str() {
        "jobarrayid" => 'i',
        "jobid" => 'A',
        "arrayjobid" => 'F',
        "account" => 'a',
        "arraytaskid" => 'K',
        "name" => 'j',
        "username" | "userid" => 'u',
        "partition" => 'P',
        "qos" => 'q',
        "state" => 'T',
        "statecompact" => 't',
        "timeused" => 'M',
        "timelimit" => 'l',
        "timeleft" => 'L',
        "numnodes" => 'D',
        "numcpus" => 'C',
        "cpuspertask" => 'c',
        "minmemory" => 'm',
        "reasonlist" => 'R',
        "reason" => 'r',
        "nodelist" => 'N',
        "submittime" => 'V',
        "starttime" => 'S',
        "endtime" => 'e',
        "command" => 'o',
        "workdir" => 'Z',
        "priority" => 'Q',
        "dependency" => 'E',
        "tres-per-node" | "gres" => 'b',
        _ => return None,
    })
}

/// One `sacct --format` field, or `None` for an unknown one. `step` is
/// `Some("batch")` for the batch step's line.
pub fn sacct_field(name: &str, j: &JobView, step: Option<&str>, now: i64) -> Option<String> {
    let id = match step {
        Some(s) => format!("{}.{s}", job_id(j)),
        None => job_id(j),
    };
    let raw = match step {
        Some(s) => format!("{}.{s}", j.id),
        None => j.id.to_string(),
    };
    let max_rss = j
        .attempts
        .iter()
        .rev()
        .find_map(|a| a.efficiency.and_then(|e| e.max_rss_kib))
        .map(|k| format!("{k}K"))
        .unwrap_or_default();
    let cpus = j.spec.resources.cpus;
    Some(match name.to_ascii_lowercase().as_str() {
        "jobid" => id,
        "jobidraw" => raw,
        "jobname" => match step {
            Some(s) => s.to_string(),
            None => j.name.clone(),
        },
        "state" => match (state_name(j).as_str(), step) {
            ("CANCELLED", None) => format!("CANCELLED by {}", 0),
            (s, _) => s.to_string(),
        },
        "exitcode" => exit_code(j),
        "derivedexitcode" => "0:0".into(),
        "elapsed" => long_duration(elapsed_ms(j, now)),
        "elapsedraw" => (elapsed_ms(j, now) / 1000).to_string(),
        "start" => timestamp_or_unknown(j.started_at),
        "end" => timestamp_or_unknown(j.finished_at),
        "submit" => timestamp(j.submitted_at),
        "nodelist" => j
            .worker
            .as_deref()
            .map(node_of)
            .or_else(|| j.attempts.last().map(|a| node_of(&a.worker)))
            .unwrap_or_else(|| "None assigned".into()),
        "nnodes" | "allocnodes" => "1".into(),
        "alloccpus" | "ncpus" | "reqcpus" => cpus.to_string(),
        "reqmem" => mem(j.spec.resources.mem_mib),
        "maxrss" => {
            if step.is_some() || j.flow.kind.is_job() {
                max_rss
            } else {
                String::new()
            }
        }
        "alloctres" | "reqtres" => {
            let mut t = format!(
                "billing={cpus},cpu={cpus},mem={},node=1",
                mem(j.spec.resources.mem_mib)
            );
            if j.spec.resources.gpus > 0 {
                t.push_str(&format!(",gres/gpu={}", j.spec.resources.gpus));
            }
            t
        }
        "partition" => j.queue.clone(),
        "account" => j.spec.project.clone().unwrap_or_default(),
        "user" => user(j),
        "group" => user(j),
        "timelimit" => time_limit(j),
        "workdir" => j
            .spec
            .flow
            .slurm
            .as_ref()
            .and_then(|s| s.chdir.clone().or(s.submit_dir.clone()))
            .unwrap_or_default(),
        "reason" => match j.state {
            JobState::Pending | JobState::Runnable | JobState::Submitted => pending_reason(j),
            _ => "None".into(),
        },
        "priority" => j.spec.priority.to_string(),
        "qos" => "normal".into(),
        "cluster" => "trestle".into(),
        "comment" => String::new(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::spec::request_from_value;

    fn view(state: JobState, reason: Option<&str>) -> JobView {
        let spec = request_from_value(serde_json::json!({
            "command": ["sim"], "name": "sim", "cpus": 2, "memory": "2G", "timeout": "1h"
        }))
        .unwrap()
        .validate()
        .unwrap();
        JobView {
            id: 1147,
            name: "sim".into(),
            queue: "batch".into(),
            state,
            reason: reason.map(str::to_string),
            attempts_used: 1,
            max_attempts: 1,
            exit_code: None,
            worker: None,
            submitted_at: 1_700_000_000_000,
            started_at: Some(1_700_000_005_000),
            finished_at: Some(1_700_000_065_000),
            spec,
            attempts: Vec::new(),
            flow: Default::default(),
            abridged: false,
            env_hidden: false,
            alarms: Vec::new(),
        }
    }

    #[test]
    fn states_and_codes() {
        let mut j = view(JobState::Failed, Some("timeout"));
        assert_eq!(state_name(&j), "TIMEOUT");
        assert_eq!(state_code(&j), "TO");
        j.reason = Some("out-of-memory".into());
        assert_eq!(state_name(&j), "OUT_OF_MEMORY");
        j.reason = Some("exit-code".into());
        j.exit_code = Some(3);
        assert_eq!(
            (state_name(&j).as_str(), exit_code(&j).as_str()),
            ("FAILED", "3:0")
        );
        let ok = view(JobState::Succeeded, None);
        assert_eq!(state_code(&ok), "CD");
        assert_eq!(
            sacct_field("State", &view(JobState::Cancelled, None), None, 0).unwrap(),
            "CANCELLED by 0"
        );
        assert_eq!(parse_state("pd").unwrap().len(), 3);
        assert!(parse_state("bogus").is_none());
    }

    #[test]
    fn fields_and_times() {
        let mut j = view(
            JobState::Runnable,
            Some("waiting on dependency 7 (after-ok; it is RUNNING)"),
        );
        assert_eq!(nodelist_reason(&j), "(Dependency)");
        j.reason = Some(
            "array parallel limit: 2 of at most 2 children at once (%2); 8 more to come".into(),
        );
        assert_eq!(pending_reason(&j), "JobArrayTaskLimit");
        assert_eq!(squeue_field('l', &j, 0).unwrap(), "1:00:00");
        assert_eq!(squeue_field('m', &j, 0).unwrap(), "2G");
        assert_eq!(squeue_field('M', &j, 0).unwrap(), "1:00");
        assert!(squeue_field('#', &j, 0).is_none());
        assert_eq!(sacct_field("Elapsed", &j, None, 0).unwrap(), "00:01:00");
        assert_eq!(
            sacct_field("Start", &j, None, 0).unwrap(),
            "2023-11-14T22:13:25"
        );
        assert_eq!(
            sacct_field("JobID", &j, Some("batch"), 0).unwrap(),
            "1147.batch"
        );
        assert_eq!(
            sacct_field("AllocTRES", &j, None, 0).unwrap(),
            "billing=2,cpu=2,mem=2G,node=1"
        );
        j.flow.parent = Some(1013);
        j.flow.array_index = Some(17);
        assert_eq!(job_id(&j), "1013_17");
        assert_eq!(sacct_field("JobIDRaw", &j, None, 0).unwrap(), "1147");
        assert_eq!(long_duration(90_061_000), "1-01:01:01");
        assert_eq!(squeue_long_field("JobID"), Some('A'));
        assert_eq!(squeue_long_field("JobArrayID"), Some('i'));
        assert_eq!(squeue_field('a', &j, 0).unwrap(), "");
        assert_eq!(squeue_field('A', &j, 0).unwrap(), "1147");
        assert_eq!(squeue_field('F', &j, 0).unwrap(), "1013");
    }
}
