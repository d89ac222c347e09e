//! Jobs through a `slurm` compute environment, end to end: the real binary
//! launches worker pilots on the local Slurm that `scripts/slurm.sh`
//! starts (`./scripts/test.sh` does), jobs run in them, pilots end when
//! idle (scale to zero), a pilot cancelled with `scancel` loses no job,
//! bad settings and pilots that cannot start surface as CE status and
//! events, and best-fit-progressive moves past a shape Slurm cannot supply.
//!
//! The tests share the cluster's one node, so they run one at a time
//! (a nextest test group, and a lock file for `cargo test`).

mod common;

use common::*;
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

const T: Duration = Duration::from_secs(120);

/// Serialises the tests of this file across processes.
struct SlurmLock(#[allow(dead_code)] std::fs::File);

fn slurm() -> SlurmLock {
    let conf = std::env::var("TRESTLE_TEST_SLURM_CONF")
        .unwrap_or_else(|_| "/var/lib/trestle-slurm/etc/slurm.conf".to_string());
    // SAFETY: every test of this binary sets the same value before it
    // starts any thread or process that reads it.
    unsafe { std::env::set_var("SLURM_CONF", &conf) };
    let out = Command::new("sinfo").arg("--noheader").output();
    assert!(
        matches!(&out, Ok(o) if o.status.success()),
        "Slurm must be running for these tests (./scripts/slurm.sh start; SLURM_CONF={conf}): {out:?}"
    );
    use std::os::unix::io::AsRawFd;
    let f = std::fs::File::create("/tmp/trestle-slurm-tests.lock").expect("lock file");
    // SAFETY: flock on a file descriptor we own.
    unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
    SlurmLock(f)
}

/// A CE name unique to this test process (pilots are found by job name).
fn ce_name(tag: &str) -> String {
    format!("t{}{tag}", std::process::id())
}

/// `trestle up` without local workers, with one Slurm CE serving the
/// default queue. `ce` is the CE's TOML body, `slurm` more lines of its
/// Slurm table.
fn start(env: &Env, name: &str, ce: &str, slurm: &str) -> (Proc, String) {
    let pilots = env.path().join("pilots");
    let extra = format!(
        "lease = \"5s\"\n[local]\nenabled = false\n\
         [compute_environments.{name}]\nprovider = \"slurm\"\nidle_timeout = \"3s\"\n{ce}\n\
         [compute_environments.{name}.slurm]\ntime_limit = \"10m\"\nlog_dir = \"{}\"\n{slurm}\n\
         [queues.default]\ncompute_environments = [\"{name}\"]\n",
        pilots.display()
    );
    let (p, token) = up(env, &extra);
    (p, token.expect("admin token"))
}

fn ce_view(env: &Env, token: &str, name: &str) -> Value {
    let (code, body) = http(
        "GET",
        &format!("{}/api/v1/compute-environments/{name}", env.url()),
        Some(token),
        None,
    );
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn events(view: &Value, kind: &str) -> Vec<String> {
    view["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .map(|e| e["message"].as_str().unwrap().to_string())
        .collect()
}

/// Slurm job ids of this CE's live pilots.
fn pilots(name: &str) -> Vec<String> {
    let out = Command::new("squeue")
        .args([
            "--noheader",
            &format!("--name=trestle-{name}"),
            "--format=%i %T",
        ])
        .output()
        .expect("squeue");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.contains("COMPLETING"))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

fn submit(env: &Env, script: &str) -> String {
    env.ok(&[
        "submit", "--cpus", "1", "--mem", "100M", "--", "sh", "-c", script,
    ])
    .trim()
    .to_string()
}

#[test]
fn jobs_run_in_slurm_pilots_and_pilots_end_when_idle() {
    let _lock = slurm();
    let env = Env::new();
    let name = ce_name("run");
    let (_up, token) = start(
        &env,
        &name,
        "max_vcpus = 2\nshapes = [{ name = \"c1\", vcpus = 1, memory = \"200M\" }]",
        "",
    );
    let ids: Vec<String> = (0..6)
        .map(|i| {
            submit(
                &env,
                &format!("echo job {i} in pilot $TRESTLE_INSTANCE_ID; sleep 1"),
            )
        })
        .collect();
    let mut used = Vec::new();
    for id in &ids {
        let j = wait_state(&env, id, "SUCCEEDED", T);
        assert_eq!(j["attempts"].as_array().unwrap().len(), 1);
        let log = env.ok(&["logs", id]);
        let pilot = log
            .split("in pilot ")
            .nth(1)
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        assert!(
            !pilot.is_empty() && pilot.bytes().all(|b| b.is_ascii_digit()),
            "the job ran in a Slurm job: {log}"
        );
        used.push(pilot);
    }
    // Every pilot that ran a job was launched by the autoscaler for this CE.
    let view = ce_view(&env, &token, &name);
    let launched = events(&view, "launched").join("\n");
    for p in &used {
        assert!(launched.contains(p.as_str()), "pilot {p} not in {launched}");
    }
    assert_eq!(view["status"], "VALID");
    // With nothing left to do the pilots end (their allocations with them).
    eventually(T, "the pilots to end", || {
        pilots(&name).is_empty().then_some(())
    });
    eventually(T, "the workers to leave", || {
        let w = env.json(&["workers", "--json"]);
        w.as_array().unwrap().is_empty().then_some(())
    });
    // New work brings a pilot back.
    let id = submit(&env, "echo again");
    wait_state(&env, &id, "SUCCEEDED", T);
}

#[test]
fn a_pilot_cancelled_with_scancel_loses_no_job() {
    let _lock = slurm();
    let env = Env::new();
    let name = ce_name("kill");
    let (_up, token) = start(
        &env,
        &name,
        "max_vcpus = 1\nshapes = [{ name = \"c1\", vcpus = 1, memory = \"200M\" }]",
        "",
    );
    let done = env.path().join("done");
    let id = submit(
        &env,
        &format!(
            // scancel signals every process of the pilot, the job's too: a
            // job that survives SIGTERM ends only when its worker (or
            // Slurm) kills it, never by running on to success.
            "trap '' TERM HUP INT; echo attempt $TRESTLE_ATTEMPT in $TRESTLE_INSTANCE_ID; sleep 6; echo $TRESTLE_ATTEMPT >> {}",
            done.display()
        ),
    );
    let j = wait_state(&env, &id, "RUNNING", T);
    let worker = j["attempts"][0]["worker"].as_str().unwrap().to_string();
    let workers = env.json(&["workers", "--json"]);
    let pilot = workers
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["id"] == worker.as_str())
        .and_then(|w| w["instance"].as_str())
        .expect("the worker names its pilot")
        .to_string();
    assert!(pilots(&name).contains(&pilot));
    let out = Command::new("scancel").arg(&pilot).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    // The attempt ends without counting; another pilot runs the job.
    let j = wait_state(&env, &id, "SUCCEEDED", T);
    let attempts = j["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{j}");
    assert!(
        attempts[0]["reason"] == "released" || attempts[0]["reason"] == "lost",
        "{j}"
    );
    assert_eq!(j["attempts_used"], 1, "an interruption is not an attempt");
    assert_ne!(attempts[1]["worker"], attempts[0]["worker"]);
    let finished = std::fs::read_to_string(&done).unwrap();
    assert_eq!(
        finished.trim(),
        "2",
        "only the second attempt ran to the end"
    );
    let view = ce_view(&env, &token, &name);
    assert!(events(&view, "launched").len() >= 2, "{view}");
}

#[test]
fn bad_settings_surface_as_status_and_events_until_fixed() {
    let _lock = slurm();
    let env = Env::new();
    let name = ce_name("bad");
    let (_up, token) = start(
        &env,
        &name,
        "max_vcpus = 1\nshapes = [{ name = \"c1\", vcpus = 1, memory = \"200M\" }]",
        "partition = \"nosuchpart\"",
    );
    let id = submit(&env, "echo fixed");
    let view = eventually(T, "the CE to be INVALID", || {
        let v = ce_view(&env, &token, &name);
        (v["status"] == "INVALID").then_some(v)
    });
    let reason = view["status_reason"].as_str().unwrap();
    assert!(reason.contains("partition"), "{reason}");
    let failed = events(&view, "launch-failed");
    assert_eq!(failed.len(), 1, "one failure, then a pause: {view}");
    assert!(failed[0].contains("nosuchpart"), "{failed:?}");
    assert_eq!(job(&env, &id)["state"], "RUNNABLE");
    assert!(pilots(&name).is_empty());
    // An admin fixes the partition through the API: valid again, the job runs.
    let mut fixed = view.clone();
    let obj = fixed.as_object_mut().unwrap();
    for k in [
        "source",
        "status",
        "status_reason",
        "status_at",
        "updated_at",
        "workers",
        "vcpus",
        "events",
        "idle_timeout_secs",
        "shapes",
        "slurm",
    ] {
        obj.remove(k);
    }
    obj.insert("idle_timeout".into(), "3s".into());
    obj.insert(
        "shapes".into(),
        serde_json::json!([{"name": "c1", "vcpus": 1, "memory": "200M"}]),
    );
    obj.insert(
        "slurm".into(),
        serde_json::json!({"partition": "debug", "time_limit": "10m"}),
    );
    let (code, body) = http(
        "PUT",
        &format!("{}/api/v1/compute-environments/{name}", env.url()),
        Some(&token),
        Some(&fixed.to_string()),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(ce_view(&env, &token, &name)["status"], "VALID");
    wait_state(&env, &id, "SUCCEEDED", T);
    // Bad declarations are refused with the field that is wrong.
    let (code, body) = http(
        "PUT",
        &format!("{}/api/v1/compute-environments/{name}", env.url()),
        Some(&token),
        Some(
            r#"{"provider": "slurm", "shapes": [{"vcpus": 1, "memory": "1G"}], "max_vcpus": 4, "slurm": {"extra_args": ["--export=ALL"]}}"#,
        ),
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("\"field\":\"slurm.extra_args[0]\""), "{body}");
}

#[test]
fn pilots_that_cannot_start_make_the_environment_invalid() {
    let _lock = slurm();
    let env = Env::new();
    let name = ce_name("nobin");
    let (_up, token) = start(
        &env,
        &name,
        "max_vcpus = 1\nprogram = \"/nonexistent/trestle\"\nshapes = [{ name = \"c1\", vcpus = 1, memory = \"200M\" }]",
        "",
    );
    let id = submit(&env, "echo never");
    let view = eventually(T, "the CE to be INVALID", || {
        let v = ce_view(&env, &token, &name);
        (v["status"] == "INVALID").then_some(v)
    });
    let failed = events(&view, "worker-failed");
    assert!(failed.len() >= 3, "{view}");
    assert!(
        failed
            .iter()
            .all(|f| f.contains("ended before it registered")),
        "{failed:?}"
    );
    assert!(
        failed[0].contains("FAILED") || failed[0].contains("exit code"),
        "Slurm's account of the failure: {failed:?}"
    );
    assert!(!events(&view, "paused").is_empty(), "{view}");
    assert_eq!(job(&env, &id)["state"], "RUNNABLE");
}

#[test]
fn best_fit_progressive_moves_past_a_shape_slurm_cannot_supply() {
    let _lock = slurm();
    let env = Env::new();
    let name = ce_name("prog");
    // `huge` is cheapest but asks for more memory than the node has.
    let (_up, token) = start(
        &env,
        &name,
        "max_vcpus = 2\nallocation_strategy = \"best-fit-progressive\"\n\
         shapes = [{ name = \"huge\", vcpus = 1, memory = 100000000, price_per_hour = 0.01 },\n\
                   { name = \"small\", vcpus = 1, memory = \"200M\", price_per_hour = 0.1 }]",
        "",
    );
    let id = submit(&env, "echo progressed");
    wait_state(&env, &id, "SUCCEEDED", T);
    let view = ce_view(&env, &token, &name);
    let cap = events(&view, "capacity-error");
    assert!(
        cap.iter().any(|m| m.contains("shape huge")),
        "the provider reported it: {view}"
    );
    assert!(
        events(&view, "launched")
            .iter()
            .any(|m| m.contains("shape small")),
        "{view}"
    );
    assert_eq!(
        view["status"], "VALID",
        "capacity is not a configuration error"
    );
}

#[test]
fn queues_share_an_environment_and_the_higher_priority_goes_first() {
    let _lock = slurm();
    let env = Env::new();
    let name = ce_name("prio");
    // The CE starts disabled, so every job is queued before any pilot runs.
    let pilots_dir = env.path().join("pilots");
    let extra = format!(
        "lease = \"5s\"\n[local]\nenabled = false\n\
         [compute_environments.{name}]\nprovider = \"slurm\"\nidle_timeout = \"3s\"\nenabled = false\n\
         max_vcpus = 1\nshapes = [{{ name = \"c1\", vcpus = 1, memory = \"200M\" }}]\n\
         slurm = {{ time_limit = \"10m\", log_dir = \"{}\" }}\n\
         [queues.low]\npriority = 1\ncompute_environments = [\"{name}\"]\n\
         [queues.high]\npriority = 50\ncompute_environments = [\"{name}\"]\n",
        pilots_dir.display()
    );
    let (_up, token) = up(&env, &extra);
    let token = token.unwrap();
    let sub = |queue: &str, priority: &str| {
        env.ok(&[
            "submit",
            "--queue",
            queue,
            "--priority",
            priority,
            "--cpus",
            "1",
            "--mem",
            "100M",
            "--",
            "true",
        ])
        .trim()
        .to_string()
    };
    let low: Vec<String> = (0..3).map(|_| sub("low", "100")).collect();
    let high: Vec<String> = (0..3).map(|_| sub("high", "0")).collect();
    let queues = env.ok(&["queue", "list"]);
    assert!(queues.contains("high") && queues.contains("50"), "{queues}");
    assert!(pilots(&name).is_empty(), "a disabled CE launches nothing");
    // Enable it from a TOML file, as an admin would.
    let file = env.path().join("ce.toml");
    std::fs::write(
        &file,
        format!(
            "provider = \"slurm\"\nidle_timeout = \"3s\"\nmax_vcpus = 1\n\
             shapes = [{{ name = \"c1\", vcpus = 1, memory = \"200M\" }}]\n\
             slurm = {{ time_limit = \"10m\", log_dir = \"{}\" }}\n",
            pilots_dir.display()
        ),
    )
    .unwrap();
    env.ok(&["ce", "set", &name, "--file", file.to_str().unwrap()]);
    let started = |id: &String| -> i64 {
        wait_state(&env, id, "SUCCEEDED", T)["attempts"][0]["started_at"]
            .as_i64()
            .unwrap()
    };
    let last_high = high.iter().map(started).max().unwrap();
    let first_low = low.iter().map(started).min().unwrap();
    assert!(
        last_high <= first_low,
        "every job of the higher-priority queue started before any of the lower one"
    );
    let shown = env.ok(&["ce", "show", &name]);
    assert!(
        shown.contains("launched") && shown.contains("VALID"),
        "{shown}"
    );
    // Non-admins may look but not change.
    let (code, body) = http(
        "DELETE",
        &format!("{}/api/v1/queues/high", env.url()),
        None,
        None,
    );
    assert_eq!(code, 401, "{body}");
    let (code, body) = http(
        "DELETE",
        &format!("{}/api/v1/compute-environments/{name}", env.url()),
        Some(&token),
        None,
    );
    assert_eq!(code, 409, "queues still list it: {body}");
}

#[test]
fn invalid_declarations_are_refused_with_the_field() {
    let env = Env::new();
    for (config, field) in [
        (
            "[compute_environments.a]\nprovider = \"slurm\"\nmax_vcpus = 4\nshapes = [{ vcpus = 0, memory = \"1G\" }]\n",
            "compute_environments.a.shapes[0].vcpus",
        ),
        (
            "[compute_environments.a]\nprovider = \"pbs\"\nmax_vcpus = 4\nshapes = [{ vcpus = 1, memory = \"1G\" }]\n",
            "compute_environments.a.provider",
        ),
        (
            "[compute_environments.a]\nprovider = \"slurm\"\nmax_vcpu = 4\nshapes = [{ vcpus = 1, memory = \"1G\" }]\n",
            "max_vcpu",
        ),
        (
            "[queues.q]\ncompute_environments = [\"missing\"]\n",
            "queues.q.compute_environments[0]",
        ),
        ("leader_lease = \"0s\"\n", "leader_lease"),
        ("advertise_urls = [\"ftp://x\"]\n", "advertise_urls[0]"),
    ] {
        let cfg = env.write_config(config);
        let out = env.run(&["server", "--config", cfg.to_str().unwrap()]);
        assert!(!out.status.success(), "{config}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(field), "{config}: {err}");
    }
}

#[test]
fn a_workspace_runs_in_a_slurm_pilot_behind_the_same_proxy() {
    let _lock = slurm();
    let env = Env::new();
    let name = ce_name("ws");
    let (_up, token) = start(
        &env,
        &name,
        "max_vcpus = 2\nshapes = [{ name = \"c1\", vcpus = 1, memory = \"400M\" }]",
        "",
    );
    env.ok(&["ws", "type", "approve", "webapp@1"]);
    let cfg = env.path().join("web.toml");
    // A lifetime the pilots' 10-minute limit cannot hold is refused.
    std::fs::write(&cfg, "name = \"web\"\ntype = \"webapp@1\"\nallow_roles = [\"admin\"]\nmemory = \"200M\"\nmax_lifetime = \"8h\"\n").unwrap();
    let out = env.run(&["ws", "config", "set", cfg.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("max_lifetime") && err.contains(&name),
        "{err}"
    );
    std::fs::write(
        &cfg,
        "name = \"web\"\ntype = \"webapp@1\"\nallow_roles = [\"admin\"]\nmemory = \"200M\"\nmax_lifetime = \"5m\"\nmax_extension = \"2m\"\n",
    )
    .unwrap();
    env.ok(&["ws", "config", "set", cfg.to_str().unwrap()]);
    let w = env.json(&["ws", "launch", "web", "--wait", "--json"]);
    assert_eq!(w["state"], "RUNNING", "{w}");
    let id = w["id"].to_string();
    // Its worker is a pilot of the Slurm environment.
    let worker = w["worker"].as_str().expect("a worker").to_string();
    let workers = env.json(&["workers", "--json"]);
    let me = workers
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == worker.as_str())
        .expect("the worker")
        .clone();
    assert_eq!(me["compute_env"], name.as_str(), "{me}");
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            &format!("Authorization: Bearer {token}"),
            &format!("{}/ws/{id}/", env.url()),
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "200",
        "reached through the server's proxy"
    );
    let s = env.ok(&["ws", "terminate", &id, "--wait"]);
    assert!(s.contains("TERMINATED"), "{s}");
}
