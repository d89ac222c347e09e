//! What a job sees at run time when it came from `trestle sbatch` (and any
//! array child): the `SLURM_*` / `TRESTLE_ARRAY_*` variables scripts read,
//! and the expansion of `--output`/`--error` file name patterns. Pure.

use crate::JobSpec;
use crate::batch::workflow::SlurmSpec;

/// Who and where a job runs, for variables and patterns.
#[derive(Debug, Clone, Copy)]
pub struct RunContext<'a> {
    /// The job's own id.
    pub job_id: i64,
    /// Its spec.
    pub spec: &'a JobSpec,
    /// The host it runs on.
    pub node: &'a str,
}

impl RunContext<'_> {
    /// The array's id for an array child, else the job's own id (Slurm's `%A`).
    pub fn array_job_id(&self) -> i64 {
        self.spec.flow.array_task.map_or(self.job_id, |t| t.parent)
    }

    /// The child's index, if it is an array child.
    pub fn array_index(&self) -> Option<u32> {
        self.spec.flow.array_task.map(|t| t.index)
    }
}

/// Slurm's default `--output` pattern.
pub fn default_output(array: bool) -> &'static str {
    if array {
        "slurm-%A_%a.out"
    } else {
        "slurm-%j.out"
    }
}

/// Expands `%j` (job id), `%A` (array job id), `%a` (array index), `%x`
/// (job name), `%u` (user), `%N` (node), `%%`; a number between `%` and
/// the letter pads with zeros (`%4a` -> `0007`). Anything else stays as
/// written.
pub fn expand_pattern(pattern: &str, ctx: &RunContext<'_>) -> String {
    let user = ctx
        .spec
        .flow
        .slurm
        .as_ref()
        .and_then(|s| s.user.clone())
        .unwrap_or_else(|| "nobody".into());
    let mut out = String::with_capacity(pattern.len() + 16);
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c != '%' {
            out.push(c);
            i += 1;
            continue;
        }
        let mut j = i + 1;
        let mut width = String::new();
        while j < chars.len() && chars[j].is_ascii_digit() && width.len() < 2 {
            width.push(chars[j]);
            j += 1;
        }
        let Some(&letter) = chars.get(j) else {
            out.extend(&chars[i..]);
            break;
        };
        let value = match letter {
            '%' if width.is_empty() => Some("%".to_string()),
            'j' => Some(ctx.job_id.to_string()),
            'A' => Some(ctx.array_job_id().to_string()),
            'a' => Some(ctx.array_index().unwrap_or(0).to_string()),
            'x' => Some(ctx.spec.name.clone()),
            'u' => Some(user.clone()),
            'N' => Some(ctx.node.to_string()),
            _ => None,
        };
        match value {
            Some(v) => {
                let w: usize = width.parse().unwrap_or(0);
                if letter.is_ascii_alphabetic() && "jAa".contains(letter) && v.len() < w {
                    out.push_str(&"0".repeat(w - v.len()));
                }
                out.push_str(&v);
                i = j + 1;
            }
            None => {
                out.extend(&chars[i..=j]);
                i = j + 1;
            }
        }
    }
    out
}

/// `TRESTLE_ARRAY_*` for array children (empty otherwise).
pub fn array_env(ctx: &RunContext<'_>) -> Vec<(String, String)> {
    let (Some(task), Some(array)) = (&ctx.spec.flow.array_task, &ctx.spec.flow.array) else {
        return Vec::new();
    };
    vec![
        ("TRESTLE_ARRAY_INDEX".into(), task.index.to_string()),
        ("TRESTLE_ARRAY_JOB_ID".into(), task.parent.to_string()),
        ("TRESTLE_ARRAY_COUNT".into(), array.len().to_string()),
    ]
}

/// The `SLURM_*` variables of a job submitted with `trestle sbatch`
/// (empty for other jobs).
pub fn slurm_env(ctx: &RunContext<'_>) -> Vec<(String, String)> {
    let Some(s) = &ctx.spec.flow.slurm else {
        return Vec::new();
    };
    let spec = ctx.spec;
    let mut env: Vec<(String, String)> = Vec::new();
    let mut set = |k: &str, v: String| env.push((k.to_string(), v));
    let id = ctx.job_id.to_string();
    set("SLURM_JOB_ID", id.clone());
    set("SLURM_JOBID", id);
    set("SLURM_JOB_NAME", spec.name.clone());
    set("SLURM_JOB_PARTITION", spec.queue.clone());
    set("SLURM_CPUS_PER_TASK", s.cpus_per_task.max(1).to_string());
    set("SLURM_CPUS_ON_NODE", spec.resources.cpus.to_string());
    set("SLURM_NTASKS", s.ntasks.max(1).to_string());
    set("SLURM_NPROCS", s.ntasks.max(1).to_string());
    set("SLURM_JOB_NUM_NODES", "1".into());
    set("SLURM_NNODES", "1".into());
    set("SLURMD_NODENAME", ctx.node.to_string());
    set("SLURM_JOB_NODELIST", ctx.node.to_string());
    set("SLURM_NODELIST", ctx.node.to_string());
    set("SLURM_MEM_PER_NODE", spec.resources.mem_mib.to_string());
    if spec.resources.gpus > 0 {
        set("SLURM_GPUS", spec.resources.gpus.to_string());
    }
    if let Some(d) = &s.submit_dir {
        set("SLURM_SUBMIT_DIR", d.clone());
    }
    if let Some(h) = &s.submit_host {
        set("SLURM_SUBMIT_HOST", h.clone());
    }
    if let Some(u) = &s.user {
        set("SLURM_JOB_USER", u.clone());
    }
    if let (Some(task), Some(array)) = (&spec.flow.array_task, &spec.flow.array) {
        set("SLURM_ARRAY_JOB_ID", task.parent.to_string());
        set("SLURM_ARRAY_TASK_ID", task.index.to_string());
        set("SLURM_ARRAY_TASK_COUNT", array.len().to_string());
        set("SLURM_ARRAY_TASK_MIN", array.min().to_string());
        set("SLURM_ARRAY_TASK_MAX", array.max().to_string());
        if let [seg] = array.segments.as_slice() {
            set("SLURM_ARRAY_TASK_STEP", seg.step.to_string());
        }
    }
    env
}

/// The output and error files of an sbatch job: (stdout file, stderr
/// file), expanded; stderr is `None` when it goes with stdout.
pub fn output_files(ctx: &RunContext<'_>) -> Option<(String, Option<String>)> {
    let s: &SlurmSpec = ctx.spec.flow.slurm.as_ref()?;
    let out = s
        .output
        .clone()
        .unwrap_or_else(|| default_output(ctx.spec.flow.array_task.is_some()).to_string());
    let out = expand_pattern(&out, ctx);
    let err = s.error.as_ref().map(|e| expand_pattern(e, ctx));
    Some((out.clone(), err.filter(|e| *e != out)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::array::{ArraySpec, ArrayTask};
    use crate::batch::spec::JobRequest;

    fn sbatch_spec(array: bool) -> JobSpec {
        let mut req = JobRequest {
            name: Some("sweep".into()),
            command: Some(crate::batch::spec::CommandRequest::Script(
                "./run.sh".into(),
            )),
            cpus: Some(4),
            memory: Some(crate::batch::spec::Quantity::Text("2G".into())),
            queue: Some("short".into()),
            slurm: Some(SlurmSpec {
                output: Some("logs/%x-%A_%a.out".into()),
                error: None,
                submit_dir: Some("/home/ada/proj".into()),
                submit_host: Some("login1".into()),
                user: Some("ada".into()),
                chdir: None,
                ntasks: 1,
                cpus_per_task: 4,
                script: None,
            }),
            ..JobRequest::default()
        };
        if array {
            req.array = Some("1-9:2%2".into());
        }
        let mut spec = req.validate().unwrap();
        if array {
            spec.flow.array_task = Some(ArrayTask {
                parent: 40,
                index: 7,
            });
        }
        spec
    }

    #[test]
    fn patterns() {
        let spec = sbatch_spec(true);
        let ctx = RunContext {
            job_id: 44,
            spec: &spec,
            node: "n1",
        };
        assert_eq!(expand_pattern("%x-%A_%a.out", &ctx), "sweep-40_7.out");
        assert_eq!(expand_pattern("j%j-u%u-%N-100%%", &ctx), "j44-uada-n1-100%");
        assert_eq!(expand_pattern("t%4a.%3j", &ctx), "t0007.044");
        assert_eq!(expand_pattern("odd%q%", &ctx), "odd%q%");
        assert_eq!(
            output_files(&ctx),
            Some(("logs/sweep-40_7.out".to_string(), None))
        );
        let plain = sbatch_spec(false);
        let ctx = RunContext {
            job_id: 5,
            spec: &plain,
            node: "n1",
        };
        assert_eq!(expand_pattern("%A-%a", &ctx), "5-0");
        let mut no_out = plain.clone();
        no_out.flow.slurm.as_mut().unwrap().output = None;
        no_out.flow.slurm.as_mut().unwrap().error = Some("err-%j.txt".into());
        let ctx = RunContext {
            job_id: 5,
            spec: &no_out,
            node: "n1",
        };
        assert_eq!(
            output_files(&ctx),
            Some(("slurm-5.out".to_string(), Some("err-5.txt".to_string())))
        );
    }

    #[test]
    fn variables() {
        let spec = sbatch_spec(true);
        let ctx = RunContext {
            job_id: 44,
            spec: &spec,
            node: "n1",
        };
        let env = slurm_env(&ctx);
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("SLURM_JOB_ID"), Some("44"));
        assert_eq!(get("SLURM_ARRAY_JOB_ID"), Some("40"));
        assert_eq!(get("SLURM_ARRAY_TASK_ID"), Some("7"));
        assert_eq!(get("SLURM_ARRAY_TASK_COUNT"), Some("5"));
        assert_eq!(get("SLURM_ARRAY_TASK_MIN"), Some("1"));
        assert_eq!(get("SLURM_ARRAY_TASK_MAX"), Some("9"));
        assert_eq!(get("SLURM_ARRAY_TASK_STEP"), Some("2"));
        assert_eq!(get("SLURM_CPUS_PER_TASK"), Some("4"));
        assert_eq!(get("SLURM_JOB_NAME"), Some("sweep"));
        assert_eq!(get("SLURM_SUBMIT_DIR"), Some("/home/ada/proj"));
        assert_eq!(get("SLURM_NTASKS"), Some("1"));
        assert_eq!(get("SLURMD_NODENAME"), Some("n1"));
        assert_eq!(get("SLURM_MEM_PER_NODE"), Some("2048"));
        assert_eq!(get("SLURM_JOB_PARTITION"), Some("short"));
        let a = array_env(&ctx);
        assert_eq!(a[0], ("TRESTLE_ARRAY_INDEX".into(), "7".into()));
        let plain = ArraySpec::parse("a", "0-3").unwrap();
        let mut spec = sbatch_spec(false);
        spec.flow.slurm = None;
        let ctx = RunContext {
            job_id: 1,
            spec: &spec,
            node: "n",
        };
        assert!(slurm_env(&ctx).is_empty());
        assert!(array_env(&ctx).is_empty());
        assert_eq!(plain.len(), 4);
    }
}
