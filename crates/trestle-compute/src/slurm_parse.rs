//! The pure parts of the Slurm provider: the pilot script, `sbatch`
//! arguments, and parsing what `sbatch`, `squeue` and `scontrol` print.

use crate::{ComputeError, InstanceStatus, ProviderWorker, WorkerCommand};
use std::collections::HashMap;
use trestle_core::Capacity;

/// Quotes a word for `/bin/sh` (single quotes; `'` becomes `'\''`).
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The batch script of a pilot: records its Slurm job id as the worker's
/// instance id and execs the worker with the shape's flags.
pub fn pilot_script(cmd: &WorkerCommand, env_name: &str, shape: Capacity) -> String {
    let mut words: Vec<String> = Vec::with_capacity(cmd.args.len() + 8);
    words.push(shell_quote(&cmd.program.display().to_string()));
    words.extend(cmd.args.iter().map(|a| shell_quote(a)));
    for (flag, v) in [
        ("--cpus", shape.cpus.to_string()),
        ("--mem-mib", shape.mem_mib.to_string()),
        ("--gpus", shape.gpus.to_string()),
    ] {
        words.push(flag.to_string());
        words.push(v);
    }
    format!(
        "#!/bin/sh\n# Trestle worker pilot of compute environment {env}\n\
         {id}=\"$SLURM_JOB_ID\"\nexport {id}\nexec {cmd}\n",
        env = env_name,
        id = crate::INSTANCE_ID_ENV,
        cmd = words.join(" ")
    )
}

/// Slurm's `--time` form: `D-HH:MM:SS`.
pub fn slurm_time(secs: u64) -> String {
    let (d, r) = (secs / 86_400, secs % 86_400);
    format!("{d}-{:02}:{:02}:{:02}", r / 3600, (r % 3600) / 60, r % 60)
}

/// The comment that marks a pilot's shape.
pub fn shape_comment(shape_name: &str) -> String {
    format!("trestle-shape:{shape_name}")
}

/// The job id `sbatch --parsable` printed (`123` or `123;cluster`).
pub fn parse_sbatch_id(stdout: &str) -> Option<String> {
    let line = stdout.lines().map(str::trim).find(|l| !l.is_empty())?;
    let id = line.split(';').next()?.trim();
    (!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())).then(|| id.to_string())
}

/// Maps a failed `sbatch` to a capacity error (the shape cannot be had
/// here) or a launch error (the settings are wrong).
pub fn classify_sbatch_error(stderr: &str) -> ComputeError {
    let text: Vec<&str> = stderr
        .lines()
        .map(|l| l.trim().trim_start_matches("sbatch: error:").trim())
        .filter(|l| !l.is_empty())
        .collect();
    let msg = if text.is_empty() {
        "sbatch failed without a message".to_string()
    } else {
        text.join("; ")
    };
    const CAPACITY: &[&str] = &[
        "Requested node configuration is not available",
        "Memory specification can not be satisfied",
        "More processors requested than permitted",
        "Node count specification invalid",
        "Requested partition configuration not available now",
        "Job violates accounting/QOS policy",
    ];
    if CAPACITY.iter().any(|c| msg.contains(c)) {
        ComputeError::Capacity(msg)
    } else {
        ComputeError::Launch(msg)
    }
}

/// True for the reasons a pending job waits that waiting will not cure.
pub fn is_stuck_reason(reason: &str) -> bool {
    let r = reason.trim().trim_matches(['(', ')']);
    matches!(
        r,
        "PartitionConfig"
            | "PartitionNodeLimit"
            | "PartitionTimeLimit"
            | "BadConstraints"
            | "InvalidAccount"
            | "InvalidQOS"
            | "DependencyNeverSatisfied"
    ) || (r.contains("PerJob") && r.contains("Max"))
}

/// `YYYY-MM-DDTHH:MM:SS` (UTC) as ms since the epoch.
pub fn parse_utc(text: &str) -> Option<i64> {
    let (date, time) = text.trim().split_once('T')?;
    let d: Vec<i64> = date
        .split('-')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let t: Vec<i64> = time
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    if d.len() != 3 || t.len() != 3 {
        return None;
    }
    let (y, m, day) = (d[0], d[1], d[2]);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400) + t[0] * 3600 + t[1] * 60 + t[2]) * 1000)
}

/// The squeue format [`parse_squeue`] reads.
pub const SQUEUE_FORMAT: &str = "%i|%T|%r|%k|%V";

/// Parses `squeue --noheader --format=SQUEUE_FORMAT` (with `TZ=UTC`) into
/// the pilots still alive; `shapes` maps shape names to capacities.
pub fn parse_squeue(text: &str, shapes: &HashMap<String, Capacity>) -> Vec<ProviderWorker> {
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.trim().splitn(5, '|').collect();
        if f.len() < 5 || f[0].is_empty() {
            continue;
        }
        let status = match f[1] {
            "PENDING" | "REQUEUED" | "REQUEUE_HOLD" | "RESV_DEL_HOLD" => {
                if is_stuck_reason(f[2]) {
                    InstanceStatus::Stuck(f[2].to_string())
                } else {
                    InstanceStatus::Pending
                }
            }
            "RUNNING" | "CONFIGURING" | "SUSPENDED" | "RESIZING" => InstanceStatus::Running,
            // COMPLETING and the terminal states: the worker has exited.
            _ => continue,
        };
        let shape_name = f[3].strip_prefix("trestle-shape:").map(str::to_string);
        let shape = shape_name
            .as_ref()
            .and_then(|n| shapes.get(n))
            .copied()
            .unwrap_or_default();
        out.push(ProviderWorker {
            id: f[0].to_string(),
            shape_name,
            shape,
            status,
            launched_at: parse_utc(f[4]),
        });
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

/// `KEY=VALUE` words of one `scontrol show ... -o` line.
pub fn parse_kv(line: &str) -> HashMap<&str, &str> {
    line.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .collect()
}

/// How an ended pilot ended, from `scontrol show job -o`; none while it is
/// still alive or when nothing is known.
pub fn describe_job(line: &str) -> Option<crate::EndedWorker> {
    let kv = parse_kv(line);
    let state = *kv.get("JobState")?;
    if matches!(
        state,
        "PENDING" | "RUNNING" | "CONFIGURING" | "COMPLETING" | "SUSPENDED"
    ) {
        return None;
    }
    let mut s = format!(
        "Slurm job {} ended {state}",
        kv.get("JobId").unwrap_or(&"?")
    );
    if let Some(code) = kv.get("ExitCode") {
        s.push_str(&format!(", exit code {code}"));
    }
    if let Some(r) = kv.get("Reason").filter(|r| **r != "None") {
        s.push_str(&format!(", reason {r}"));
    }
    Some(crate::EndedWorker {
        ok: state == "COMPLETED" && kv.get("ExitCode").is_none_or(|c| *c == "0:0"),
        cancelled: state.starts_with("CANCELLED"),
        what: s,
    })
}

/// Free capacity of one node from `scontrol show node -o`: (free CPUs,
/// free MiB, GPUs), none for nodes that take no work.
pub fn node_free(line: &str) -> Option<(u64, u64, u64)> {
    let kv = parse_kv(line);
    let state = kv.get("State").copied().unwrap_or("");
    if ["DOWN", "DRAIN", "FAIL", "POWER", "NOT_RESPONDING", "MAINT"]
        .iter()
        .any(|s| state.contains(s))
    {
        return None;
    }
    let num = |k: &str| kv.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let cpus = num("CPUTot").saturating_sub(num("CPUAlloc"));
    let mem = num("RealMemory").saturating_sub(num("AllocMem"));
    let gpus = kv
        .get("Gres")
        .map(|g| {
            g.split(',')
                .filter_map(|part| part.strip_prefix("gpu:"))
                .filter_map(|rest| rest.split('(').next()?.rsplit(':').next())
                .filter_map(|n| n.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    Some((cpus, mem, gpus))
}

/// How many workers of `shape` fit into nodes with the given free capacity.
pub fn fits_in_nodes(nodes: &[(u64, u64, u64)], shape: Capacity) -> u64 {
    nodes
        .iter()
        .map(|(c, m, g)| {
            let by_cpu = c / u64::from(shape.cpus.max(1));
            let by_mem = m / shape.mem_mib.max(1);
            let by_gpu = if shape.gpus == 0 {
                u64::MAX
            } else {
                g / u64::from(shape.gpus)
            };
            by_cpu.min(by_mem).min(by_gpu)
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("abc-1.2/x"), "abc-1.2/x");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("$HOME"), "'$HOME'");
    }

    #[test]
    fn script_and_time() {
        let cmd = WorkerCommand {
            program: "/opt/trestle bin/trestle".into(),
            args: vec![
                "worker".into(),
                "--server".into(),
                "http://a,http://b".into(),
            ],
            env: vec![],
        };
        let s = pilot_script(
            &cmd,
            "ce1",
            Capacity {
                cpus: 2,
                mem_mib: 512,
                gpus: 0,
            },
        );
        assert!(s.starts_with("#!/bin/sh\n"), "{s}");
        assert!(s.contains("TRESTLE_INSTANCE_ID=\"$SLURM_JOB_ID\""), "{s}");
        assert!(
            s.contains("exec '/opt/trestle bin/trestle' worker --server http://a,http://b --cpus 2 --mem-mib 512 --gpus 0"),
            "{s}"
        );
        assert_eq!(slurm_time(90), "0-00:01:30");
        assert_eq!(slurm_time(86_400 + 3661), "1-01:01:01");
    }

    #[test]
    fn sbatch_answers() {
        assert_eq!(parse_sbatch_id("123\n").as_deref(), Some("123"));
        assert_eq!(parse_sbatch_id("77;cluster\n").as_deref(), Some("77"));
        assert_eq!(parse_sbatch_id("Submitted batch job 5"), None);
        let cap = classify_sbatch_error(
            "sbatch: error: Memory specification can not be satisfied\nsbatch: error: Batch job submission failed: Requested node configuration is not available\n",
        );
        assert!(matches!(cap, ComputeError::Capacity(_)), "{cap:?}");
        let bad = classify_sbatch_error(
            "sbatch: error: invalid partition specified: nosuch\nsbatch: error: Batch job submission failed: Invalid partition name specified\n",
        );
        match bad {
            ComputeError::Launch(m) => {
                assert!(m.contains("invalid partition specified: nosuch"), "{m}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn squeue_lines() {
        let shapes: HashMap<String, Capacity> = [(
            "c1".to_string(),
            Capacity {
                cpus: 1,
                mem_mib: 256,
                gpus: 0,
            },
        )]
        .into();
        let text = "12|RUNNING|None|trestle-shape:c1|2026-11-22T12:58:14\n\
                    13|PENDING|Resources|trestle-shape:c1|2026-11-22T12:58:15\n\
                    14|PENDING|PartitionConfig|trestle-shape:c1|2026-11-22T12:58:15\n\
                    15|COMPLETING|None|trestle-shape:c1|2026-11-22T12:58:15\n\
                    16|RUNNING|None|(null)|N/A\n";
        let v = parse_squeue(text, &shapes);
        assert_eq!(v.len(), 4);
        assert_eq!(v[0].status, InstanceStatus::Running);
        assert_eq!(v[0].shape.cpus, 1);
        assert_eq!(v[0].launched_at, parse_utc("2026-11-22T12:58:14"));
        assert_eq!(v[1].status, InstanceStatus::Pending);
        assert_eq!(v[2].status, InstanceStatus::Stuck("PartitionConfig".into()));
        assert_eq!(v[3].id, "16");
        assert_eq!(v[3].shape_name, None);
        assert_eq!(v[3].launched_at, None);
        assert!(is_stuck_reason("QOSMaxCpuPerJobLimit"));
        assert!(!is_stuck_reason("Priority"));
        assert!(!is_stuck_reason("Resources"));
    }

    #[test]
    fn utc_times() {
        assert_eq!(parse_utc("1970-01-01T00:00:00"), Some(0));
        assert_eq!(parse_utc("2000-03-01T00:00:01"), Some(951_868_801_000));
        assert_eq!(parse_utc("2026-11-22T12:58:14"), Some(1_795_352_294_000));
        assert_eq!(parse_utc("N/A"), None);
        assert_eq!(parse_utc("2026-13-01T00:00:00"), None);
    }

    #[test]
    fn scontrol_lines() {
        let ended = "JobId=7 JobName=trestle-ce1 JobState=FAILED Reason=NonZeroExitCode Dependency=(null) ExitCode=127:0";
        let d = describe_job(ended).unwrap();
        assert_eq!(
            d.what,
            "Slurm job 7 ended FAILED, exit code 127:0, reason NonZeroExitCode"
        );
        assert!(!d.ok && !d.cancelled);
        let d = describe_job("JobId=9 JobState=COMPLETED Reason=None ExitCode=0:0").unwrap();
        assert!(d.ok);
        let d = describe_job("JobId=9 JobState=CANCELLED Reason=None ExitCode=0:15").unwrap();
        assert!(d.cancelled && !d.ok);
        assert_eq!(describe_job("JobId=8 JobState=RUNNING Reason=None"), None);
        let node = "NodeName=n1 CPUAlloc=1 CPUTot=4 RealMemory=8000 AllocMem=1000 Gres=gpu:a100:2(S:0) State=MIXED";
        assert_eq!(node_free(node), Some((3, 7000, 2)));
        assert_eq!(node_free("NodeName=n2 CPUTot=4 State=DOWN+DRAIN"), None);
        let c = |cpus, mem_mib, gpus| Capacity {
            cpus,
            mem_mib,
            gpus,
        };
        assert_eq!(
            fits_in_nodes(&[(3, 7000, 2), (8, 1000, 0)], c(1, 1000, 0)),
            4
        );
        assert_eq!(fits_in_nodes(&[(3, 7000, 2)], c(1, 100, 1)), 2);
    }
}
