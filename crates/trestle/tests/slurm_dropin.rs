//! Slurm's commands as a drop-in (`trestle slurm install-shims DIR`):
//! what they print, checked as tools parse it, and real workflow tools
//! from PyPI (submitit, dask-jobqueue) running unchanged through them
//! against `trestle up`. Every shim call is logged (`TRESTLE_SHIM_LOG`)
//! and the log is kept next to the test's data; a call the shims refuse
//! fails the test with the call named.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

const T: Duration = Duration::from_secs(120);

/// A test with the shims installed and first on PATH.
struct Shims {
    env: Env,
    dir: PathBuf,
    log: PathBuf,
    _up: Proc,
}

impl Shims {
    fn new() -> Shims {
        let env = Env::new();
        let (up_proc, _) = up(&env, "");
        let dir = env.path().join("shims");
        let out = env.ok(&["slurm", "install-shims", dir.to_str().unwrap()]);
        assert!(out.contains("10 Slurm commands"), "{out}");
        let log = env.path().join("shim-calls.jsonl");
        Shims {
            env,
            dir,
            log,
            _up: up_proc,
        }
    }

    fn path_var(&self, extra: Option<&Path>) -> String {
        let mut p = self.dir.display().to_string();
        if let Some(e) = extra {
            p = format!("{p}:{}", e.display());
        }
        format!("{p}:{}", std::env::var("PATH").unwrap_or_default())
    }

    /// A command with the test's environment, the shims first on PATH and
    /// every call logged.
    fn cmd(&self, program: &str, extra_path: Option<&Path>) -> Command {
        let base = self.env.cmd();
        let mut c = Command::new(program);
        c.current_dir(self.env.path());
        for (k, v) in base.get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        c.env("PATH", self.path_var(extra_path))
            .env("TRESTLE_SHIM_LOG", &self.log);
        c
    }

    fn run(&self, program: &str, args: &[&str]) -> Output {
        self.cmd(&self.dir.join(program).display().to_string(), None)
            .args(args)
            .output()
            .unwrap()
    }

    fn ok(&self, program: &str, args: &[&str]) -> String {
        let o = self.run(program, args);
        assert!(
            o.status.success(),
            "`{program} {}` failed ({:?}): {}{}",
            args.join(" "),
            o.status.code(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Every logged call: (program, args, exit).
    fn calls(&self) -> Vec<(String, Vec<String>, i64)> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (
                    v["program"].as_str().unwrap().to_string(),
                    v["args"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|a| a.as_str().unwrap().to_string())
                        .collect(),
                    v["exit"].as_i64().unwrap(),
                )
            })
            .collect()
    }

    /// No call failed because the shims refused it.
    fn assert_no_refusals(&self) {
        for (p, a, code) in self.calls() {
            if code != 0 && p != "scancel" {
                panic!("a shim call failed: {p} {}", a.join(" "));
            }
        }
    }
}

fn lines(s: &str) -> Vec<&str> {
    s.lines().collect()
}

#[test]
fn the_commands_print_what_slurm_prints() {
    let s = Shims::new();
    // sbatch --parsable --wrap; squeue while it runs; sacct once it ended.
    let id = s
        .ok("sbatch", &["--parsable", "-J", "nap", "--wrap", "sleep 3"])
        .trim()
        .to_string();
    wait_state(&s.env, &id, "RUNNING", T);
    let q = s.ok("squeue", &["--me", "-h", "-o", "%i|%j|%t|%u|%P"]);
    assert_eq!(lines(&q), [format!("{id}|nap|R|admin|default")], "{q}");
    let q = s.ok("squeue", &["-j", &id]);
    let rows = lines(&q);
    assert!(rows[0].trim_start().starts_with("JOBID PARTITION"), "{q}");
    assert!(rows[1].contains(" R ") && rows[1].contains("nap"), "{q}");
    wait_state(&s.env, &id, "SUCCEEDED", T);
    assert_eq!(
        s.ok("squeue", &["-h", "-j", &id]),
        "",
        "finished jobs leave squeue"
    );
    let a = s.ok(
        "sacct",
        &[
            "-j",
            &id,
            "-P",
            "-n",
            "--format=JobID,JobName,State,ExitCode,Elapsed",
        ],
    );
    let rows = lines(&a);
    assert_eq!(rows.len(), 2, "the job and its batch step: {a}");
    let cols: Vec<&str> = rows[0].split('|').collect();
    assert_eq!(&cols[..4], [id.as_str(), "nap", "COMPLETED", "0:0"], "{a}");
    assert!(cols[4].starts_with("00:00:0"), "{a}");
    assert_eq!(
        rows[1].split('|').next(),
        Some(format!("{id}.batch").as_str())
    );
    let x = s.ok("sacct", &["-j", &id, "-X", "--format=JobID,State"]);
    let x = lines(&x);
    assert_eq!(x.len(), 3, "header, dashes, the job: {x:?}");
    assert!(x[1].starts_with("----"), "{x:?}");

    // An array: ids are ID_INDEX; a failed child is FAILED with its code.
    let arr = s
        .ok(
            "sbatch",
            &[
                "--parsable",
                "-a",
                "0-3",
                "--wrap",
                "exit $SLURM_ARRAY_TASK_ID",
            ],
        )
        .trim()
        .to_string();
    wait_state(&s.env, &arr, "FAILED", T);
    let a = s.ok(
        "sacct",
        &[
            "-j",
            &arr,
            "-X",
            "-n",
            "--parsable2",
            "--format=JobID,State,ExitCode",
        ],
    );
    let mut got: Vec<&str> = lines(&a);
    got.sort();
    assert_eq!(
        got,
        [
            format!("{arr}_0|COMPLETED|0:0"),
            format!("{arr}_1|FAILED|1:0"),
            format!("{arr}_2|FAILED|2:0"),
            format!("{arr}_3|FAILED|3:0"),
        ],
        "{a}"
    );

    // scancel; sacct says CANCELLED.
    let long = s
        .ok("sbatch", &["--parsable", "--wrap", "sleep 60"])
        .trim()
        .to_string();
    wait_state(&s.env, &long, "RUNNING", T);
    s.ok("scancel", &[&long]);
    wait_state(&s.env, &long, "CANCELLED", T);
    let a = s.ok("sacct", &["-j", &long, "-X", "-n", "-P", "-o", "State"]);
    assert!(a.starts_with("CANCELLED"), "{a}");
    let o = s.run("scancel", &["999999"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("Invalid job id specified"));

    // srun inside a job runs a step on the job's allocation.
    let step = s
        .ok(
            "sbatch",
            &[
                "--parsable",
                "--wrap",
                "srun -n 2 sh -c 'echo task $SLURM_PROCID of $SLURM_NTASKS' | sort",
            ],
        )
        .trim()
        .to_string();
    wait_state(&s.env, &step, "SUCCEEDED", T);
    assert_eq!(s.env.ok(&["logs", &step]), "task 0 of 2\ntask 1 of 2\n");
    // Outside a job, and with options it cannot honour, it says why.
    let o = s.run("srun", &["hostname"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("outside a job"));

    // The cluster, one job, the accounts.
    let i = s.ok("sinfo", &[]);
    assert!(lines(&i)[0].starts_with("PARTITION"), "{i}");
    assert!(i.contains("default*"), "{i}");
    let show = s.ok("scontrol", &["show", "job", &id]);
    assert!(show.contains(&format!("JobId={id} JobName=nap")), "{show}");
    assert!(show.contains("JobState=COMPLETED"), "{show}");
    assert_eq!(
        s.ok(
            "sacctmgr",
            &["-nP", "show", "user", "format=user,defaultaccount"]
        ),
        "admin|default\n"
    );
    let sh = s.ok("sshare", &["-P"]);
    assert!(
        sh.lines().nth(1).unwrap().starts_with("default|admin|"),
        "{sh}"
    );

    // Unsupported options are refused by name.
    let o = s.run("squeue", &["--bogus"]);
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("squeue: error: unrecognized option '--bogus'"),
        "{e}"
    );
    // Every call was logged, with its exit code.
    let calls = s.calls();
    assert!(
        calls
            .iter()
            .any(|(p, a, c)| p == "squeue" && a == &["--bogus".to_string()] && *c == 1),
        "{calls:?}"
    );
    assert!(calls.iter().any(|(p, _, c)| p == "sacct" && *c == 0));
}

/// A Python interpreter with the workflow tools (`TRESTLE_TEST_SLURM_TOOLS`,
/// set by scripts/test.sh).
fn tools() -> PathBuf {
    let dir = std::env::var("TRESTLE_TEST_SLURM_TOOLS").expect(
        "TRESTLE_TEST_SLURM_TOOLS (the bin directory of a venv with submitit and dask-jobqueue; scripts/test.sh installs it)",
    );
    PathBuf::from(dir)
}

fn python(s: &Shims, script: &str) -> Output {
    let bin = tools();
    let file = s.env.path().join("tool.py");
    std::fs::write(&file, script).unwrap();
    s.cmd(&bin.join("python").display().to_string(), Some(&bin))
        .arg(&file)
        .output()
        .unwrap()
}

fn keep_log(s: &Shims, name: &str) {
    let dest = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-shim-calls.jsonl"));
    let _ = std::fs::copy(&s.log, dest);
}

#[test]
fn submitit_runs_unchanged() {
    let s = Shims::new();
    let folder = s.env.path().join("submitit");
    let out = python(
        &s,
        &format!(
            r#"
import submitit

def add(a, b):
    return a + b

ex = submitit.SlurmExecutor(folder="{folder}")
ex.update_parameters(time=5, mem="512MB", cpus_per_task=1)
job = ex.submit(add, 2, 3)
print("single", job.result())
jobs = ex.map_array(add, [1, 2, 3], [10, 20, 30])
print("array", [j.result() for j in jobs])
print("ids", job.job_id, jobs[0].job_id)
"#,
            folder = folder.display()
        ),
    );
    keep_log(&s, "submitit");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "submitit failed:\n{stdout}\n{}\ncalls: {:?}",
        String::from_utf8_lossy(&out.stderr),
        s.calls()
    );
    assert!(stdout.contains("single 5"), "{stdout}");
    assert!(stdout.contains("array [11, 22, 33]"), "{stdout}");
    // The jobs ended as Slurm says it: COMPLETED, the array's as ID_INDEX.
    let ids: Vec<&str> = stdout
        .lines()
        .find_map(|l| l.strip_prefix("ids "))
        .unwrap()
        .split(' ')
        .collect();
    let (single, child) = (ids[0], ids[1]);
    assert!(child.ends_with("_0"), "{child}");
    let array = child.split('_').next().unwrap();
    wait_state(&s.env, single, "SUCCEEDED", T);
    wait_state(&s.env, array, "SUCCEEDED", T);
    let acct = s.ok(
        "sacct",
        &[
            "-j",
            &format!("{single},{array}"),
            "-X",
            "-n",
            "-P",
            "-o",
            "JobID,State",
        ],
    );
    let mut got: Vec<&str> = acct.lines().collect();
    got.sort();
    assert_eq!(
        got,
        [
            format!("{single}|COMPLETED"),
            format!("{array}_0|COMPLETED"),
            format!("{array}_1|COMPLETED"),
            format!("{array}_2|COMPLETED"),
        ],
        "{acct}"
    );
    let calls = s.calls();
    for p in ["sbatch", "sacct", "srun"] {
        assert!(
            calls.iter().any(|(c, _, _)| c == p),
            "{p} was called: {calls:?}"
        );
    }
    s.assert_no_refusals();
}

#[test]
fn dask_jobqueue_runs_unchanged() {
    let s = Shims::new();
    let out = python(
        &s,
        r#"
from dask_jobqueue import SLURMCluster
from dask.distributed import Client

cluster = SLURMCluster(cores=1, processes=1, memory="512MB", walltime="00:10:00",
                       scheduler_options={"host": "127.0.0.1"}, interface=None,
                       worker_extra_args=["--host", "127.0.0.1"])
cluster.scale(2)
client = Client(cluster)
client.wait_for_workers(2, timeout=120)
futures = client.map(lambda x: x * x, range(10))
print("sum", sum(client.gather(futures)))
client.close()
cluster.close()
print("closed")
"#,
    );
    keep_log(&s, "dask-jobqueue");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "dask-jobqueue failed:\n{stdout}\n{}\ncalls: {:?}",
        String::from_utf8_lossy(&out.stderr),
        s.calls()
    );
    assert!(stdout.contains("sum 285"), "{stdout}");
    let calls = s.calls();
    assert_eq!(
        calls.iter().filter(|(c, _, _)| c == "sbatch").count(),
        2,
        "{calls:?}"
    );
    assert!(calls.iter().any(|(c, _, _)| c == "scancel"), "{calls:?}");
    s.assert_no_refusals();
}

/// `#SBATCH` scripts written the way HPC centres' documentation writes
/// them, submitted from a driver script through the shims: a serial job
/// with mail options, an array reading its line of an input file, a
/// multi-threaded job using srun, and a dependency chain by job id.
#[test]
fn hpc_centre_scripts_run_unchanged() {
    let s = Shims::new();
    let work = s.env.path().join("project");
    std::fs::create_dir_all(&work).unwrap();
    let put = |name: &str, text: &str| std::fs::write(work.join(name), text).unwrap();
    put(
        "serial.sh",
        "#!/bin/bash\n#SBATCH --job-name=serial_job_test    # Job name\n#SBATCH --mail-type=END,FAIL          # Mail events\n#SBATCH --mail-user=ada@example.edu\n#SBATCH --ntasks=1                    # Run on a single CPU\n#SBATCH --mem=1gb                     # Job memory request\n#SBATCH --time=00:05:00               # Time limit hrs:min:sec\n#SBATCH --output=serial_test_%j.log   # Standard output and error log\npwd; hostname; date\necho \"Running on a single CPU core\"\n",
    );
    put("samples.txt", "alpha\nbeta\ngamma\n");
    put(
        "array.sh",
        "#!/bin/bash\n#SBATCH --job-name=array_job\n#SBATCH --output=array_%A-%a.out\n#SBATCH --array=1-3\n#SBATCH --time=00:05:00\n#SBATCH --mem-per-cpu=200M\nSAMPLE=$(sed -n \"${SLURM_ARRAY_TASK_ID}p\" samples.txt)\necho \"task $SLURM_ARRAY_TASK_ID of job $SLURM_ARRAY_JOB_ID processes $SAMPLE\" > result_${SLURM_ARRAY_TASK_ID}.txt\n",
    );
    put(
        "threads.sh",
        "#!/bin/bash\n#SBATCH -J omp\n#SBATCH -N 1\n#SBATCH --ntasks-per-node=1\n#SBATCH --cpus-per-task=2\n#SBATCH -t 0-00:05\n#SBATCH -o omp-%j.out\nexport OMP_NUM_THREADS=$SLURM_CPUS_PER_TASK\nsrun sh -c 'echo \"threads $OMP_NUM_THREADS on $SLURM_CPUS_PER_TASK cpus\"'\n",
    );
    put(
        "combine.sh",
        "#!/bin/bash\n#SBATCH -J combine\n#SBATCH -o combine.out\ncat result_*.txt | sort\n",
    );
    put(
        "driver.sh",
        "#!/bin/bash\nset -e\nserial=$(sbatch --parsable serial.sh)\narray=$(sbatch --parsable array.sh)\nomp=$(sbatch --parsable threads.sh)\ncombine=$(sbatch --parsable --dependency=afterok:$array combine.sh)\necho \"$serial $array $omp $combine\"\n",
    );
    let out = s
        .cmd("bash", None)
        .current_dir(&work)
        .arg("driver.sh")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ids: Vec<String> = text.split_whitespace().map(str::to_string).collect();
    assert_eq!(ids.len(), 4, "{text}");
    for id in &ids {
        wait_state(&s.env, id, "SUCCEEDED", T);
    }
    let here = work.canonicalize().unwrap();
    let serial = std::fs::read_to_string(work.join(format!("serial_test_{}.log", ids[0]))).unwrap();
    assert!(
        serial.starts_with(&format!("{}\n", here.display())),
        "it ran in the submit directory: {serial}"
    );
    let a = std::fs::read_to_string(work.join("result_2.txt")).unwrap();
    assert_eq!(a, format!("task 2 of job {} processes beta\n", ids[1]));
    assert!(work.join(format!("array_{}-3.out", ids[1])).exists());
    let omp = std::fs::read_to_string(work.join(format!("omp-{}.out", ids[2]))).unwrap();
    assert_eq!(omp, "threads 2 on 2 cpus\n");
    let combined = std::fs::read_to_string(work.join("combine.out")).unwrap();
    assert_eq!(combined.lines().count(), 3, "{combined}");
    assert!(combined.contains("processes gamma"), "{combined}");
    s.assert_no_refusals();
}

/// Snakemake with its Slurm executor plugin: the rules run as Slurm jobs
/// through the shims (`sbatch --wrap`, `srun` inside, `sacct` for status,
/// `sinfo`, `scontrol show config`, the account lookups).
#[test]
fn snakemake_slurm_executor_runs_unchanged() {
    let s = Shims::new();
    let work = s.env.path().join("pipeline");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(
        work.join("Snakefile"),
        r#"rule all:
    input: "out/summary.txt"

rule square:
    output: "out/{n}.txt"
    resources: mem_mb=100, runtime=5
    shell: "echo $(( {wildcards.n} * {wildcards.n} )) > {output}"

rule summary:
    input: expand("out/{n}.txt", n=[1, 2, 3])
    output: "out/summary.txt"
    resources: mem_mb=100, runtime=5
    shell: "awk '{{s += $1}} END {{print s}}' {input} > {output}"
"#,
    )
    .unwrap();
    let bin = tools();
    let out = s
        .cmd(&bin.join("snakemake").display().to_string(), Some(&bin))
        .current_dir(&work)
        .args([
            "--executor",
            "slurm",
            "--jobs",
            "3",
            "--latency-wait",
            "5",
            "--slurm-init-seconds-before-status-checks",
            "1",
        ])
        .output()
        .unwrap();
    keep_log(&s, "snakemake");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "snakemake failed:\n{err}\ncalls: {:?}",
        s.calls()
    );
    assert_eq!(
        std::fs::read_to_string(work.join("out/summary.txt")).unwrap(),
        "14\n"
    );
    let calls = s.calls();
    let sbatch = calls.iter().filter(|(c, _, _)| c == "sbatch").count();
    assert_eq!(sbatch, 4, "one Slurm job per rule instance: {calls:?}");
    for p in ["srun", "sacct", "sinfo", "scontrol"] {
        assert!(calls.iter().any(|(c, _, _)| c == p), "{p}: {calls:?}");
    }
    // The plugin guesses an account with `sacct -nu USER -o Account | tail
    // -1` passed as arguments, not to a shell: Slurm's sacct refuses the
    // `|` too. Every other call succeeded.
    for (p, a, code) in &calls {
        let shell_in_args = a.iter().any(|w| w == "|");
        assert!(
            *code == 0 || (p == "sacct" && shell_in_args),
            "a shim call failed: {p} {}",
            a.join(" ")
        );
    }
}
