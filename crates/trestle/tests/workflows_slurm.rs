//! `#SBATCH` scripts and drop folders end to end through the real binary.

mod common;

use common::*;
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

const T: Duration = Duration::from_secs(90);

/// A real-world-shaped array script: per-index results, a log per task
/// named with Slurm's patterns, and the variables scripts read.
const SWEEP: &str = r#"#!/bin/bash
#SBATCH --job-name=sweep
#SBATCH --array=1-3
#SBATCH --cpus-per-task=1
#SBATCH --mem=64M
#SBATCH --time=0-00:05:00
#SBATCH --output=logs/%x_%A_%a.out
#SBATCH --error=logs/%x_%A_%a.err
#SBATCH --mail-type=END
#SBATCH --account=default
#SBATCH --qos=debug

set -e
echo "task $SLURM_ARRAY_TASK_ID of $SLURM_ARRAY_TASK_COUNT ($SLURM_ARRAY_TASK_MIN-$SLURM_ARRAY_TASK_MAX) in array $SLURM_ARRAY_JOB_ID"
echo "job $SLURM_JOB_ID name $SLURM_JOB_NAME cpus $SLURM_CPUS_PER_TASK ntasks $SLURM_NTASKS mem $SLURM_MEM_PER_NODE"
echo "node $SLURMD_NODENAME submitted from $SLURM_SUBMIT_DIR args $1"
echo "a warning" >&2
echo $((SLURM_ARRAY_TASK_ID * SLURM_ARRAY_TASK_ID)) > result_$SLURM_ARRAY_TASK_ID.txt
"#;

/// The post-processing step: sums what the array produced.
const POST: &str = r#"#!/bin/sh
#SBATCH -J post
#SBATCH -o post-%j.out
total=0
for f in result_*.txt; do total=$((total + $(cat "$f"))); done
echo "sum $total"
"#;

fn write_script(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn sbatch_scripts_run_like_under_slurm() {
    let env = Env::new();
    let (_up, _) = up(&env, "");
    let sweep = write_script(env.path(), "sweep.sh", SWEEP);
    let out = env.run(&["sbatch", &sweep, "first"]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let id = stdout
        .trim()
        .strip_prefix("Submitted batch job ")
        .unwrap_or_else(|| panic!("sbatch prints like Slurm: {stdout}"))
        .to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning") && stderr.contains("--qos"),
        "{stderr}"
    );
    // `--mail-type=END` subscribes the owner to the job's end.
    let subs = env.json(&["notify", "subscriptions", "--json"]);
    assert!(
        subs["subscriptions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["job"].as_i64().map(|j| j.to_string()).as_deref() == Some(id.as_str())),
        "{subs}"
    );

    // The dependent post-processing step: command-line options win.
    let post = write_script(env.path(), "post.sh", POST);
    let dep = format!("--dependency=afterok:{id}");
    let post_id = env.ok(&["sbatch", "--parsable", &dep, "-J", "summary", &post]);
    let post_id = post_id.trim().to_string();
    assert!(
        post_id.parse::<i64>().is_ok(),
        "--parsable prints the id: {post_id}"
    );
    let waited = env.run(&["wait", &id, &post_id]);
    assert!(waited.status.success(), "{waited:?}");

    let parent = job(&env, &id);
    assert_eq!(parent["name"], "sweep");
    assert_eq!(parent["children"]["counts"]["SUCCEEDED"], 3);
    assert_eq!(parent["spec"]["timeout_secs"], 300);
    assert_eq!(parent["spec"]["resources"]["mem_mib"], 64);
    let list = env.json(&["jobs", "--json"]);
    let children: Vec<&Value> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["parent"].as_i64() == id.parse::<i64>().ok())
        .collect();
    assert_eq!(children.len(), 3);
    // As under Slurm, the jobs ran in the submit directory (the worker is
    // on the submit host) and wrote their files there.
    let dir = env.path();
    for c in children {
        let cid = c["id"].to_string();
        let i = c["array_index"].as_i64().unwrap();
        let log = std::fs::read_to_string(dir.join(format!("logs/sweep_{id}_{i}.out"))).unwrap();
        assert!(
            log.contains(&format!("task {i} of 3 (1-3) in array {id}")),
            "{log}"
        );
        assert!(
            log.contains(&format!("job {cid} name sweep cpus 1 ntasks 1 mem 64")),
            "{log}"
        );
        let here = env.path().canonicalize().unwrap();
        assert!(
            log.contains(&format!("submitted from {} args first", here.display())),
            "{log}"
        );
        assert!(!log.contains("a warning"), "stderr goes to --error");
        let err = std::fs::read_to_string(dir.join(format!("logs/sweep_{id}_{i}.err"))).unwrap();
        assert_eq!(err, "a warning\n");
        let r = std::fs::read_to_string(dir.join(format!("result_{i}.txt"))).unwrap();
        assert_eq!(r.trim(), (i * i).to_string());
    }
    let p = job(&env, &post_id);
    assert_eq!(
        p["name"], "summary",
        "the command line wins over #SBATCH -J"
    );
    let text = std::fs::read_to_string(dir.join(format!("post-{post_id}.out"))).unwrap();
    assert_eq!(text.trim(), "sum 14", "1 + 4 + 9 from the array's files");

    // squeue-style listing.
    let table = env.ok(&["jobs", "--format", "slurm"]);
    assert!(table.starts_with("JOBID"), "{table}");
    assert!(table.contains(&format!("{id}_2")), "{table}");
    assert!(table.contains(" CD "), "{table}");

    // More than one node is a clear error; nothing is submitted.
    let before = env.json(&["jobs", "--json"]).as_array().unwrap().len();
    let out = env.run(&["sbatch", "-N", "2", &post]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--nodes") && err.contains("more than one node"),
        "{err}"
    );
    let out = env.run(&["sbatch", "--time", "soon", &post]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--time"));
    assert_eq!(
        env.json(&["jobs", "--json"]).as_array().unwrap().len(),
        before
    );
}

#[test]
fn sbatch_chdir_dependency_failure_and_scancel_options() {
    let env = Env::new();
    let (_up, _) = up(&env, "");
    let work = env.path().join("shared");
    std::fs::create_dir_all(&work).unwrap();
    let script = write_script(
        env.path(),
        "fail.sh",
        "#!/bin/sh\n#SBATCH -D shared\n#SBATCH -o out-%j.txt\npwd\nexit 2\n",
    );
    let id = env
        .ok(&["sbatch", "--parsable", &script])
        .trim()
        .to_string();
    let next = env
        .ok(&[
            "sbatch",
            "--parsable",
            "-d",
            &format!("afterok:{id}"),
            &script,
        ])
        .trim()
        .to_string();
    let j = wait_state(&env, &next, "CANCELLED", T);
    assert_eq!(j["reason"], "dependency-failed");
    assert_eq!(job(&env, &id)["state"], "FAILED");
    // --chdir: the script ran (and wrote its output) in that directory.
    let out = std::fs::read_to_string(work.join(format!("out-{id}.txt"))).unwrap();
    assert_eq!(
        out.trim(),
        work.canonicalize().unwrap().display().to_string()
    );

    // scancel-style selection by name and state.
    let go = env.path().join("GO");
    let gate = format!("while [ ! -f {} ]; do sleep 0.1; done", go.display());
    let a = env
        .ok(&["submit", "--name", "keep", "--", "sh", "-c", &gate])
        .trim()
        .to_string();
    let b = env.ok(&[
        "submit", "--name", "drop-me", "--array", "0-3", "--", "sh", "-c", &gate,
    ]);
    let b = b.trim().to_string();
    let out = env.ok(&["cancel", "--name", "drop-me"]);
    assert!(
        out.lines().any(|l| l.starts_with(&format!("{b} "))),
        "{out}"
    );
    assert!(!out.contains(&a), "only jobs named drop-me: {out}");
    wait_state(&env, &b, "CANCELLED", T);
    assert!(
        !job(&env, &a)["state"]
            .as_str()
            .unwrap()
            .ends_with("CANCELLED")
    );
    let child = env.run(&["cancel", &format!("{b}_99")]);
    assert_eq!(child.status.code(), Some(2));
    std::fs::write(&go, "").unwrap();
    wait_state(&env, &a, "SUCCEEDED", T);
}

fn make_trigger(path: &Path, text: &str) {
    // Written under another name, then renamed: the trigger appears whole.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn drop_folders_turn_sub_folders_into_jobs() {
    let env = Env::new();
    let (_up, _) = up(&env, "[queues.default]\ndrop_folder = \"drop\"\n");
    let drop = env.path().join("drop");
    let case = drop.join("case1");
    std::fs::create_dir_all(&case).unwrap();
    std::fs::write(case.join("input.txt"), "hello drop\n").unwrap();
    make_trigger(
        &case.join("run.sh"),
        "#!/bin/sh\ntr a-z A-Z < input.txt > output.txt\nprintf '#!/bin/sh\\necho never\\n' > next.sh\n",
    );
    let out = eventually(T, "outputs written back", || {
        std::fs::read_to_string(case.join("output.txt")).ok()
    });
    assert_eq!(out, "HELLO DROP\n");
    assert!(
        case.join("next.sh").is_file(),
        "outputs come back, triggers included"
    );
    let jobs = env.json(&["jobs", "--json"]);
    let jobs = jobs.as_array().unwrap();
    let j = jobs
        .iter()
        .find(|j| j["spec"]["key"] == "drop:default:case1")
        .expect("a job keyed by the folder");
    assert_eq!(j["state"], "SUCCEEDED");
    assert_eq!(j["name"], "case1/run.sh");
    assert_eq!(j["spec"]["owner"], "admin", "the folder's default owner");
    assert_eq!(j["spec"]["project"], "default");

    // A second trigger in the same folder is a recorded error, not a run.
    make_trigger(&case.join("second.sh"), "#!/bin/sh\necho should not run\n");
    let dup = eventually(T, "the duplicate trigger's record", || {
        let jobs = env.json(&["jobs", "--json"]);
        jobs.as_array()
            .unwrap()
            .iter()
            .find(|j| j["name"] == "case1/second.sh")
            .cloned()
    });
    assert_eq!(dup["state"], "FAILED");
    let reason = dup["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("duplicate-trigger: folder `case1` already has job"),
        "{reason}"
    );
    // A new folder is a new job; the written-back next.sh never ran.
    let case2 = drop.join("case2");
    std::fs::create_dir_all(&case2).unwrap();
    make_trigger(&case2.join("go.sh"), "#!/bin/sh\necho two > two.txt\n");
    eventually(T, "the second folder's outputs", || {
        std::fs::read_to_string(case2.join("two.txt")).ok()
    });
    let jobs = env.json(&["jobs", "--json"]);
    let names: Vec<&str> = jobs
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].as_str().unwrap())
        .collect();
    assert!(!names.iter().any(|n| n.ends_with("next.sh")), "{names:?}");
    assert_eq!(names.len(), 3, "{names:?}");
}

#[test]
fn drop_folder_jobs_belong_to_the_configured_owner_and_wait_in_a_disabled_queue() {
    let env = Env::new();
    let (_up, _) = up(
        &env,
        "[queues.held]\nenabled = false\ndrop_folder = \"drop\"\ndrop_owner = \"alice\"\ndrop_project = \"bio\"\n",
    );
    env.ok(&["index", "add", "grant"]);
    env.ok(&["project", "add", "bio", "--index", "grant"]);
    env.ok(&["user", "add", "alice", "--project", "bio"]);
    let case = env.path().join("drop/case1");
    std::fs::create_dir_all(&case).unwrap();
    make_trigger(&case.join("run.sh"), "#!/bin/sh\necho held\n");
    let j = eventually(T, "the drop-folder job", || {
        let jobs = env.json(&["jobs", "--json"]);
        jobs.as_array()
            .unwrap()
            .iter()
            .find(|j| j["name"] == "case1/run.sh")
            .cloned()
    });
    assert_eq!(j["spec"]["owner"], "alice", "{j}");
    assert_eq!(j["spec"]["project"], "bio", "{j}");
    // Held, as any submission to a disabled queue (the hold is applied
    // right after the insert, in its own transaction).
    let id = j["id"].to_string();
    let j = wait_state(&env, &id, "PENDING", T);
    assert!(
        j["reason"].as_str().unwrap_or("").contains("disabled"),
        "{j}"
    );
}
