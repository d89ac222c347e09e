//! `srun` inside a job: runs its command as a job step on the job's own
//! allocation (one node), `-n N` copies with `SLURM_PROCID`, output to
//! `--output`/`--error` files with srun's patterns. Outside a job, and
//! for what needs several nodes or a terminal (`-N 2`, `--pty`), it is
//! refused with the reason.

use super::Refused;
use super::args::{Opt, flag, parse, val};
use anyhow::Result;
use std::process::Stdio;

const SRUN: &[Opt] = &[
    val(Some('n'), "ntasks"),
    val(Some('N'), "nodes"),
    val(None, "ntasks-per-node"),
    val(Some('c'), "cpus-per-task"),
    val(None, "mem"),
    val(None, "mem-per-cpu"),
    val(Some('o'), "output"),
    val(Some('e'), "error"),
    val(Some('i'), "input"),
    val(Some('J'), "job-name"),
    val(None, "export"),
    val(None, "cpu-bind"),
    val(None, "cpu_bind"),
    val(None, "mpi"),
    val(Some('t'), "time"),
    val(None, "gres"),
    val(None, "gpus"),
    val(None, "gpus-per-node"),
    val(None, "gpus-per-task"),
    flag(Some('K'), "kill-on-bad-exit"),
    val(Some('D'), "chdir"),
    flag(Some('u'), "unbuffered"),
    flag(None, "exclusive"),
    flag(None, "overlap"),
    flag(None, "exact"),
    flag(Some('Q'), "quiet"),
    flag(Some('v'), "verbose"),
    flag(None, "pty"),
];

/// `%j %J %s %t %n %N %u %x %A %a %%` in an srun output pattern.
fn expand(pattern: &str, task: u32, node: &str, env: &dyn Fn(&str) -> String) -> String {
    let job = env("SLURM_JOB_ID");
    let mut out = String::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut width = String::new();
        while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
            width.push(*d);
            chars.next();
        }
        let Some(code) = chars.next() else {
            out.push('%');
            break;
        };
        let v = match code {
            '%' => "%".to_string(),
            'j' => job.clone(),
            'J' => format!("{job}.0"),
            's' => "0".into(),
            't' => task.to_string(),
            'n' => "0".into(),
            'N' => node.to_string(),
            'u' => env("SLURM_JOB_USER"),
            'x' => env("SLURM_JOB_NAME"),
            'A' => {
                let a = env("SLURM_ARRAY_JOB_ID");
                if a.is_empty() { job.clone() } else { a }
            }
            'a' => env("SLURM_ARRAY_TASK_ID"),
            other => format!("%{width}{other}"),
        };
        let w: usize = width.parse().unwrap_or(0);
        if code != '%' && v.len() < w && v.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&"0".repeat(w - v.len()));
        }
        out.push_str(&v);
    }
    out
}

fn getenv(k: &str) -> String {
    std::env::var(k).unwrap_or_default()
}

fn open(path: &str) -> Result<std::fs::File> {
    Ok(std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?)
}

/// `srun`.
pub async fn srun(args: &[String]) -> Result<u8> {
    let p = parse("srun", args, SRUN, true)?;
    if std::env::var("SLURM_JOB_ID").is_err() {
        return Err(Refused(
            "srun outside a job needs an allocation (salloc), which Trestle does not offer yet; \
             submit the command with `sbatch --wrap`"
                .into(),
        )
        .into());
    }
    if p.has("pty") {
        return Err(Refused(
            "--pty: interactive steps come with workspaces (trestle ws connect)".into(),
        )
        .into());
    }
    if let Some(n) = p.value("nodes") {
        let hi = n.rsplit('-').next().unwrap_or(n);
        if hi.trim().parse::<u32>().map_or(true, |v| v > 1) {
            return Err(Refused(format!(
                "--nodes={n}: a job step runs on its job's one node for now (multi-node steps come with multi-node jobs)"
            ))
            .into());
        }
    }
    let ntasks: u32 = match p.value("ntasks").or(p.value("ntasks-per-node")) {
        Some(n) => n
            .parse()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| Refused(format!("--ntasks={n} is not a positive number")))?,
        None => 1,
    };
    let Some((program, rest)) = p.rest.split_first() else {
        return Err(Refused("no command to run: srun [OPTIONS] COMMAND [ARGS...]".into()).into());
    };
    let node = std::env::var("SLURMD_NODENAME").unwrap_or_default();
    let mut children = Vec::new();
    for task in 0..ntasks {
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(rest)
            .env("SLURM_STEP_ID", "0")
            .env("SLURM_STEPID", "0")
            .env("SLURM_PROCID", task.to_string())
            .env("SLURM_LOCALID", task.to_string())
            .env("SLURM_NODEID", "0")
            .env("SLURM_STEP_NUM_TASKS", ntasks.to_string())
            .env("SLURM_NTASKS", ntasks.to_string())
            .env("SLURM_STEP_NUM_NODES", "1");
        if let Some(d) = p.value("chdir") {
            cmd.current_dir(d);
        }
        if let Some(o) = p.value("output") {
            cmd.stdout(Stdio::from(open(&expand(o, task, &node, &getenv))?));
            // Without --error, stderr goes with stdout, as in srun.
            if p.value("error").is_none() {
                cmd.stderr(Stdio::from(open(&expand(o, task, &node, &getenv))?));
            }
        }
        if let Some(e) = p.value("error") {
            cmd.stderr(Stdio::from(open(&expand(e, task, &node, &getenv))?));
        }
        if let Some(i) = p.value("input") {
            cmd.stdin(Stdio::from(std::fs::File::open(i)?));
        }
        let child = cmd
            .spawn()
            .map_err(|e| Refused(format!("cannot run {program}: {e}")))?;
        children.push(child);
    }
    let mut code = 0u8;
    for mut c in children {
        let status = c.wait().await?;
        let this = match status.code() {
            Some(n) => n.clamp(0, 255) as u8,
            None => {
                use std::os::unix::process::ExitStatusExt;
                128 + status.signal().unwrap_or(0).clamp(0, 127) as u8
            }
        };
        code = code.max(this);
    }
    if code != 0 {
        eprintln!("srun: error: task(s) exited with exit code {code}");
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    #[test]
    fn output_patterns() {
        let env = |k: &str| {
            if k == "SLURM_JOB_ID" {
                "77".to_string()
            } else {
                String::new()
            }
        };
        assert_eq!(
            super::expand("/logs/%j_%t_log.out", 2, "n1", &env),
            "/logs/77_2_log.out"
        );
        assert_eq!(
            super::expand("%J-%N-%%-%3t", 5, "n1", &env),
            "77.0-n1-%-005"
        );
        assert_eq!(super::expand("%A_%a", 0, "n1", &env), "77_");
    }
}
