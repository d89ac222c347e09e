//! The `slurm` provider: workers run as Slurm jobs ("pilots"). A pilot is
//! submitted with `sbatch` (the shape becomes `--cpus-per-task`, `--mem`,
//! `--gres=gpu:N`; the CE adds `--time`, partition, account, QOS and extra
//! options), runs `trestle worker` with the worker credential in its
//! environment (exported by name, never on a command line), and ends when
//! its worker exits after its idle timeout. Pilots are found again with
//! `squeue` by their job name, so a server that takes over sees the pilots
//! another one launched; `scancel` retires them (SIGTERM first, so the
//! worker hands its jobs back).

use crate::slurm_parse::{
    SQUEUE_FORMAT, classify_sbatch_error, describe_job, fits_in_nodes, node_free, parse_sbatch_id,
    parse_squeue, pilot_script, shape_comment, slurm_time,
};
use crate::{ComputeError, LaunchRequest, Provider, ProviderWorker, Result, WorkerCommand};
use async_trait::async_trait;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use trestle_core::Capacity;

/// How long one Slurm command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// Variables a pilot inherits from the server besides its credentials
/// (with the worker's isolation settings, as local workers inherit them).
const PASS_THROUGH: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LANG",
    "LC_ALL",
    "TZ",
    "TRESTLE_ISOLATION",
    "TRESTLE_TASK_PIDS_MAX",
];

/// Settings of one Slurm CE's pilots.
#[derive(Debug, Clone)]
pub struct SlurmConfig {
    /// The CE's name (in the job name and the script).
    pub env_name: String,
    /// Job name of every pilot; `squeue --name` finds them by it.
    pub job_name: String,
    /// The worker command the pilot execs.
    pub command: WorkerCommand,
    /// The CE's shapes, by name (to read pilots back).
    pub shapes: HashMap<String, Capacity>,
    /// `--partition`.
    pub partition: Option<String>,
    /// `--account`.
    pub account: Option<String>,
    /// `--qos`.
    pub qos: Option<String>,
    /// Further `sbatch` options.
    pub extra_args: Vec<String>,
    /// `--time`, seconds.
    pub time_limit_secs: u64,
    /// Directory of the pilots' own output (`pilot-<jobid>.out`); none:
    /// `/dev/null`.
    pub log_dir: Option<PathBuf>,
}

/// Pilots on a Slurm cluster, through its command-line tools.
pub struct SlurmProvider {
    cfg: SlurmConfig,
}

impl SlurmProvider {
    /// A provider for one CE.
    pub fn new(cfg: SlurmConfig) -> SlurmProvider {
        SlurmProvider { cfg }
    }

    /// The settings.
    pub fn config(&self) -> &SlurmConfig {
        &self.cfg
    }

    /// The `sbatch` arguments for one pilot of `shape`; `export` names
    /// the variables it inherits.
    pub fn sbatch_args(&self, shape_name: &str, shape: Capacity, export: &[String]) -> Vec<String> {
        let c = &self.cfg;
        let mut a = vec![
            "--parsable".to_string(),
            format!("--job-name={}", c.job_name),
            format!("--comment={}", shape_comment(shape_name)),
            "--nodes=1".into(),
            "--ntasks=1".into(),
            format!("--cpus-per-task={}", shape.cpus),
            format!("--mem={}M", shape.mem_mib),
            format!("--time={}", slurm_time(c.time_limit_secs)),
            format!("--export={}", export.join(",")),
        ];
        if shape.gpus > 0 {
            a.push(format!("--gres=gpu:{}", shape.gpus));
        }
        match &c.log_dir {
            Some(d) => a.push(format!("--output={}/pilot-%j.out", d.display())),
            None => a.push("--output=/dev/null".into()),
        }
        for (flag, v) in [
            ("--partition", &c.partition),
            ("--account", &c.account),
            ("--qos", &c.qos),
        ] {
            if let Some(v) = v {
                a.push(format!("{flag}={v}"));
            }
        }
        a.extend(c.extra_args.iter().cloned());
        a
    }

    async fn run(&self, program: &str, args: &[String], stdin: Option<&str>) -> Result<String> {
        self.run_env(program, args, stdin, &[]).await
    }

    async fn run_env(
        &self,
        program: &str,
        args: &[String],
        stdin: Option<&str>,
        env: &[(String, String)],
    ) -> Result<String> {
        let mut c = Command::new(program);
        c.args(args)
            .env("TZ", "UTC")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = c
            .spawn()
            .map_err(|e| ComputeError::Launch(format!("cannot run `{program}`: {e}")))?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(text.as_bytes())
                .await
                .map_err(|e| ComputeError::Other(format!("{program}: {e}")))?;
            drop(pipe);
        }
        let out = tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
            .await
            .map_err(|_| ComputeError::Other(format!("`{program}` did not answer within 30s")))?
            .map_err(|e| ComputeError::Other(format!("{program}: {e}")))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            Ok(stdout)
        } else {
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            Err(if program == "sbatch" {
                classify_sbatch_error(&stderr)
            } else {
                ComputeError::Other(format!("`{program}` failed: {}", stderr.trim()))
            })
        }
    }

    async fn launch_one(
        &self,
        req: &LaunchRequest<'_>,
        script: &str,
        export: &[String],
    ) -> Result<ProviderWorker> {
        if let Some(d) = &self.cfg.log_dir {
            let _ = tokio::fs::create_dir_all(d).await;
        }
        let args = self.sbatch_args(req.shape_name, req.shape, export);
        let mut env: Vec<(String, String)> = self.cfg.command.env.clone();
        env.extend(req.env.iter().cloned());
        let out = self.run_env("sbatch", &args, Some(script), &env).await?;
        let id = parse_sbatch_id(&out).ok_or_else(|| {
            ComputeError::Launch(format!("sbatch printed no job id: {}", out.trim()))
        })?;
        Ok(ProviderWorker {
            id,
            shape_name: Some(req.shape_name.to_string()),
            shape: req.shape,
            status: crate::InstanceStatus::Pending,
            launched_at: Some(crate::now_ms()),
        })
    }
}

#[async_trait]
impl Provider for SlurmProvider {
    fn name(&self) -> &str {
        "slurm"
    }

    async fn launch(&self, req: &LaunchRequest<'_>) -> Result<Vec<ProviderWorker>> {
        let script = pilot_script(&self.cfg.command, &self.cfg.env_name, req.shape);
        let mut export: Vec<String> = PASS_THROUGH
            .iter()
            .filter(|k| std::env::var_os(k).is_some())
            .map(|k| k.to_string())
            .collect();
        for (k, _) in self.cfg.command.env.iter().chain(req.env.iter()) {
            if !export.contains(k) {
                export.push(k.clone());
            }
        }
        let mut out = Vec::with_capacity(req.count as usize);
        for _ in 0..req.count {
            out.push(self.launch_one(req, &script, &export).await?);
        }
        Ok(out)
    }

    async fn list(&self) -> Result<Vec<ProviderWorker>> {
        let args = vec![
            "--noheader".to_string(),
            format!("--name={}", self.cfg.job_name),
            format!("--format={SQUEUE_FORMAT}"),
        ];
        let text = self.run("squeue", &args, None).await?;
        Ok(parse_squeue(&text, &self.cfg.shapes))
    }

    async fn terminate(&self, id: &str) -> Result<()> {
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ComputeError::NotFound(format!(
                "`{id}` is not a Slurm job id"
            )));
        }
        let mine = self.list().await?.into_iter().any(|w| w.id == id);
        if !mine {
            return Err(ComputeError::NotFound(format!(
                "no live pilot {id} of {}",
                self.cfg.job_name
            )));
        }
        self.run("scancel", &[id.to_string()], None).await?;
        Ok(())
    }

    async fn available(&self, shapes: &[(String, Capacity)]) -> Result<BTreeMap<String, u64>> {
        let mut sinfo = vec![
            "--noheader".to_string(),
            "--Node".into(),
            "--format=%N".into(),
        ];
        if let Some(p) = &self.cfg.partition {
            sinfo.push(format!("--partition={p}"));
        }
        let names: Vec<String> = self
            .run("sinfo", &sinfo, None)
            .await?
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        let nodes_text = self
            .run(
                "scontrol",
                &["show".into(), "node".into(), "-o".into()],
                None,
            )
            .await?;
        let nodes: Vec<(u64, u64, u64)> = nodes_text
            .lines()
            .filter(|l| {
                crate::slurm_parse::parse_kv(l)
                    .get("NodeName")
                    .is_some_and(|n| names.iter().any(|m| m == n))
            })
            .filter_map(node_free)
            .collect();
        Ok(shapes
            .iter()
            .map(|(n, c)| (n.clone(), fits_in_nodes(&nodes, *c)))
            .collect())
    }

    async fn describe(&self, id: &str) -> Result<Option<crate::EndedWorker>> {
        let line = match self
            .run(
                "scontrol",
                &["show".into(), "job".into(), "-o".into(), id.to_string()],
                None,
            )
            .await
        {
            Ok(l) => l,
            // Forgotten already (MinJobAge passed).
            Err(_) => return Ok(None),
        };
        let Some(mut what) = describe_job(line.trim()) else {
            return Ok(None);
        };
        if let Some(d) = &self.cfg.log_dir {
            let log = d.join(format!("pilot-{id}.out"));
            if let Ok(text) = tokio::fs::read_to_string(&log).await {
                let tail: Vec<&str> = text.lines().rev().take(3).collect();
                if !tail.is_empty() {
                    let tail: Vec<&str> = tail.into_iter().rev().collect();
                    what.what
                        .push_str(&format!("; its output ends: {}", tail.join(" / ")));
                }
            }
        }
        Ok(Some(what))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sbatch_arguments() {
        let p = SlurmProvider::new(SlurmConfig {
            env_name: "ce".into(),
            job_name: "trestle-ce".into(),
            command: WorkerCommand {
                program: "/bin/trestle".into(),
                args: vec!["worker".into()],
                env: vec![],
            },
            shapes: HashMap::new(),
            partition: Some("gpu".into()),
            account: Some("phys".into()),
            qos: None,
            extra_args: vec!["--constraint=ib".into()],
            time_limit_secs: 3600,
            log_dir: Some("/logs".into()),
        });
        let a = p.sbatch_args(
            "g1",
            Capacity {
                cpus: 4,
                mem_mib: 8192,
                gpus: 2,
            },
            &["PATH".into(), "TRESTLE_TOKEN".into()],
        );
        for want in [
            "--job-name=trestle-ce",
            "--comment=trestle-shape:g1",
            "--cpus-per-task=4",
            "--mem=8192M",
            "--gres=gpu:2",
            "--time=0-01:00:00",
            "--partition=gpu",
            "--account=phys",
            "--constraint=ib",
            "--output=/logs/pilot-%j.out",
            "--export=PATH,TRESTLE_TOKEN",
        ] {
            assert!(a.iter().any(|x| x == want), "{want} missing from {a:?}");
        }
        assert!(!a.iter().any(|x| x.starts_with("--qos")));
    }
}
