//! Costs end to end on a real `trestle up`, on SQLite and PostgreSQL: a
//! job is charged its share of its worker's priced shape from its own
//! timestamps (by CPU, or by memory when it takes most of it), an
//! interrupted attempt is charged too, reports and roll-ups agree with
//! the records; a budget crossing its thresholds sends one event per
//! threshold to a real webhook receiver, and in block mode refuses new
//! submissions, holds queued work "over budget", and opens again when an
//! admin raises it.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const T: Duration = Duration::from_secs(90);
/// 36 per hour for a 2-CPU, 2 GiB worker: 0.01 per second for the whole shape.
const PRICE: f64 = 36.0;

fn config(db: Option<String>) -> String {
    let mut c = String::new();
    if let Some(db) = db {
        c.push_str(&format!("database = \"{db}\"\n"));
    }
    c.push_str(
        "lease = \"3s\"\n\
         [local]\nworker_cpus = 2\nworker_memory = \"2G\"\nmax_vcpus = 2\nprice_per_hour = 36.0\nidle_exit = \"60s\"\n\
         [costs]\nunit = \"credits\"\nmeter_interval = \"200ms\"\nbudget_interval = \"300ms\"\n\
         [notify]\ntick = \"50ms\"\n",
    );
    c
}

fn submit(env: &Env, args: &[&str]) -> String {
    let mut a = vec!["submit"];
    a.extend_from_slice(args);
    env.ok(&a).trim().to_string()
}

/// The job's cost once `n` of its attempts are metered.
fn cost(env: &Env, token: &str, id: &str, n: u64) -> serde_json::Value {
    eventually(T, &format!("job {id} to be metered"), || {
        let (code, body) = http(
            "GET",
            &format!("{}/api/v1/jobs/{id}/cost", env.url()),
            Some(token),
            None,
        );
        assert_eq!(code, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        (v["records"].as_u64() == Some(n)).then_some(v)
    })
}

/// What an attempt of `share` of the shape costs from its own timestamps.
fn expected(attempt: &serde_json::Value, share: f64) -> f64 {
    let ms = attempt["ended_at"].as_i64().unwrap() - attempt["started_at"].as_i64().unwrap();
    share * PRICE * ms as f64 / 3_600_000.0
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

fn charges_follow_shares(db: Option<String>) {
    let env = Env::new();
    let (_up, token) = up(&env, &config(db));
    let token = token.unwrap();
    // One CPU of two: half the shape.
    let a = submit(&env, &["--cpus", "1", "--mem", "100M", "--", "sleep", "1"]);
    // One CPU but 1.5 GiB of 2: charged by memory, three quarters.
    let b = submit(&env, &["--cpus", "1", "--mem", "1536M", "--", "sleep", "1"]);
    for id in [&a, &b] {
        wait_state(&env, id, "SUCCEEDED", T);
    }
    for (id, share) in [(&a, 0.5), (&b, 0.75)] {
        let c = cost(&env, &token, id, 1);
        let j = job(&env, id);
        let want = expected(&j["attempts"][0], share);
        let got = c["charge"].as_f64().unwrap();
        assert!(close(got, want), "job {id}: charged {got}, expected {want}");
        assert!(got > 0.0);
        assert_eq!(c["unit"], "credits");
        assert!(
            close(
                c["usage"][0]["rate_per_hour"].as_f64().unwrap(),
                share * PRICE
            ),
            "{c}"
        );
    }
    // An interrupted attempt: its worker is killed mid-run; the attempt is
    // lost (not counted against the job's attempts) and charged.
    let c = submit(&env, &["--cpus", "1", "--mem", "100M", "--", "sleep", "6"]);
    wait_state(&env, &c, "RUNNING", T);
    let pid = eventually(T, "the job's worker", || {
        let workers = env.json(&["workers", "--json"]);
        workers.as_array().unwrap().iter().find_map(|w| {
            let runs = w["running_jobs"].as_array().is_some_and(|r| {
                r.iter()
                    .any(|x| x.as_i64().map(|i| i.to_string()) == Some(c.clone()))
            });
            (runs).then(|| w["pid"].as_i64().unwrap())
        })
    });
    // The attempt must have started (the command runs) before the kill.
    eventually(T, "the attempt to start", || {
        job(&env, &c)["attempts"][0]["started_at"]
            .as_i64()
            .map(|_| ())
    });
    std::thread::sleep(Duration::from_millis(800));
    assert!(
        std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    let j = wait_state(&env, &c, "SUCCEEDED", T);
    let attempts = j["attempts"].as_array().unwrap();
    assert!(attempts.len() >= 2, "{j}");
    assert_eq!(attempts[0]["state"], "lost", "{j}");
    let cc = cost(&env, &token, &c, attempts.len() as u64);
    let want: f64 = attempts
        .iter()
        .filter(|a| a["started_at"].is_i64() && a["ended_at"].is_i64())
        .map(|a| expected(a, 0.5))
        .sum();
    let lost = cc["usage"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["attempt"] == 1)
        .unwrap()["charge"]
        .as_f64()
        .unwrap();
    assert!(lost > 0.0, "the interrupted attempt is charged: {cc}");
    assert!(
        close(cc["charge"].as_f64().unwrap(), want),
        "{cc} vs {want}"
    );
    // The report sums the same records (per user, per day), and the CLI
    // prints it as a table, JSON and CSV.
    let total = [&a, &b, &c]
        .iter()
        .map(|id| {
            cost(
                &env,
                &token,
                id,
                if **id == c { attempts.len() as u64 } else { 1 },
            )["charge"]
                .as_f64()
                .unwrap()
        })
        .sum::<f64>();
    let r = env.json(&["costs", "--by", "user", "--days", "2", "--json"]);
    let admin = r["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["key"] == "admin")
        .unwrap_or_else(|| panic!("{r}"));
    assert!(
        close(admin["charge"].as_f64().unwrap(), total),
        "{r} vs {total}"
    );
    // The jobs slept: nearly all the CPU they were given went unused.
    let eff = admin["cpu_efficiency"]
        .as_f64()
        .unwrap_or_else(|| panic!("{r}"));
    assert!((0.0..0.5).contains(&eff), "{r}");
    assert!(admin["unused_core_hours"].as_f64().unwrap() > 0.0, "{r}");
    assert!(env.ok(&["costs"]).contains("credits"));
    let csv = env.ok(&["costs", "--by", "kind", "--csv"]);
    assert!(csv.starts_with("kind,day,charge,unit"), "{csv}");
    assert!(csv.lines().any(|l| l.starts_with("job,")), "{csv}");
    // `job show` prints the cost.
    assert!(env.ok(&["job", "show", &a]).contains("cost: "));
    // Bad queries are 4xx naming the parameter.
    let (code, body) = http(
        "GET",
        &format!("{}/api/v1/costs?by=colour", env.url()),
        Some(&token),
        None,
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("\"field\":\"by\""), "{body}");
}

#[test]
fn a_job_is_charged_its_share_of_the_shape_sqlite() {
    charges_follow_shares(None);
}

#[test]
fn a_job_is_charged_its_share_of_the_shape_postgres() {
    charges_follow_shares(Some(fresh_postgres("costs_share")));
}

/// A webhook receiver that keeps every event it is sent.
fn receiver(port: u16) -> Arc<Mutex<Vec<serde_json::Value>>> {
    let got: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let l = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let g = got.clone();
    std::thread::spawn(move || {
        for mut s in l.incoming().map_while(Result::ok) {
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut len = 0usize;
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; len];
            if r.read_exact(&mut body).is_ok()
                && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body)
            {
                for e in v["data"]["events"].as_array().into_iter().flatten() {
                    g.lock().unwrap().push(e.clone());
                }
            }
            let _ = write!(s, "HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n");
        }
    });
    got
}

fn budget_thresholds_and_block(db: Option<String>) {
    let env = Env::new();
    let (_up, token) = up(&env, &config(db));
    let token = token.unwrap();
    let port = free_port();
    let got = receiver(port);
    let url = format!("http://127.0.0.1:{port}/hook");
    env.ok(&[
        "notify",
        "targets",
        "add",
        "hook",
        "--kind",
        "webhook",
        "--webhook-url",
        &url,
        "--signing-secret",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "--allow-loopback",
    ]);
    env.ok(&[
        "notify",
        "rules",
        "add",
        "budgets",
        "--events",
        "budget.threshold",
        "--targets",
        "hook",
    ]);
    // Spend something: two CPUs for two seconds is about 0.02.
    let a = submit(&env, &["--cpus", "2", "--mem", "100M", "--", "sleep", "2"]);
    wait_state(&env, &a, "SUCCEEDED", T);
    let spent = cost(&env, &token, &a, 1)["charge"].as_f64().unwrap();
    assert!(spent > 0.0);
    // A budget the spend has passed 80% (not 90%) of, in block mode.
    let amount = spent / 0.85;
    let amount_s = format!("{amount}");
    env.ok(&[
        "budget",
        "set",
        "--project",
        "default",
        "--amount",
        &amount_s,
        "--enforce",
        "block",
    ]);
    // 50% and 80% are crossed (and the forecast, when the month is far
    // enough along to project it).
    let crossed = |env: &Env| -> Vec<String> {
        let b = env.json(&["budget", "show", "--project", "default", "--json"]);
        b["crossed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m.as_str().unwrap().to_string())
            .collect()
    };
    let marks = eventually(T, "the thresholds to be crossed", || {
        let m = crossed(&env);
        (m.contains(&"50".to_string()) && m.contains(&"80".to_string())).then_some(m)
    });
    assert!(!marks.contains(&"90".to_string()), "{marks:?}");
    let b = env.json(&["budget", "show", "--project", "default", "--json"]);
    assert_eq!(b["blocked"], false, "{b}");
    // Several evaluations later: one event per mark, no more.
    std::thread::sleep(Duration::from_millis(1500));
    let events = |got: &Arc<Mutex<Vec<serde_json::Value>>>| {
        let mut per: BTreeMap<String, usize> = BTreeMap::new();
        for e in got.lock().unwrap().iter() {
            assert_eq!(e["type"], "budget.threshold", "{e}");
            let detail = e["detail"].as_str().unwrap_or("").to_string();
            let key = if detail.starts_with("forecast") {
                "forecast".to_string()
            } else {
                detail.split('%').next().unwrap_or("").to_string()
            };
            *per.entry(key).or_default() += 1;
        }
        per
    };
    let marks = crossed(&env);
    let per = eventually(T, "one event per crossed mark", || {
        let p = events(&got);
        (p.len() == marks.len()).then_some(p)
    });
    for m in &marks {
        assert_eq!(per.get(m), Some(&1), "{per:?} {marks:?}");
    }
    // Block mode: queued work waits over budget once the budget is spent.
    // A job queued now is accepted (the budget is not yet spent) and runs;
    // its charge crosses 90% and 100%.
    let c = submit(&env, &["--cpus", "2", "--mem", "100M", "--", "sleep", "1"]);
    // Queued work: a job no worker here can take (3 GiB of 2) stays queued.
    let x = submit(&env, &["--cpus", "1", "--mem", "3G", "--", "true"]);
    wait_state(&env, &c, "SUCCEEDED", T);
    eventually(T, "the budget to block", || {
        let b = env.json(&["budget", "show", "--project", "default", "--json"]);
        (b["blocked"] == true).then_some(())
    });
    let per = eventually(T, "the 90% and 100% events", || {
        let p = events(&got);
        (p.contains_key("90") && p.contains_key("100")).then_some(p)
    });
    std::thread::sleep(Duration::from_millis(1000));
    let per2 = events(&got);
    assert_eq!(per, per2, "no event twice");
    assert!(per.values().all(|n| *n == 1), "{per:?}");
    // Queued work waits with the reason...
    let held = eventually(T, "the queued job to be held over budget", || {
        let j = job(&env, &x);
        j["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("over budget"))
            .then_some(j)
    });
    assert_eq!(held["state"], "PENDING", "{held}");
    // ... until an admin lets it past (audited), while the budget stays spent.
    env.ok(&["budget", "override", &x]);
    eventually(T, "the overridden job to be queued again", || {
        let j = job(&env, &x);
        (j["state"] == "RUNNABLE").then_some(())
    });
    env.ok(&["cancel", &x]);
    // The next submission is refused with its reason.
    let out = env.run(&["submit", "--", "true"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("budget"), "{err}");
    let (code, body) = http(
        "POST",
        &format!("{}/api/v1/jobs", env.url()),
        Some(&token),
        Some(r#"{"command": ["true"]}"#),
    );
    assert_eq!(code, 403, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], "over-budget", "{body}");
    assert_eq!(v["error"]["field"], "project", "{body}");
    // Raised: accepted again, and it runs.
    let raised = format!("{}", amount * 10.0);
    env.ok(&[
        "budget",
        "set",
        "--project",
        "default",
        "--amount",
        &raised,
        "--enforce",
        "block",
    ]);
    let d = eventually(T, "a submission to be accepted", || {
        let out = env.run(&["submit", "--", "true"]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    });
    wait_state(&env, &d, "SUCCEEDED", T);
    // Only admins set budgets; the change is in the audit trail.
    env.ok(&["user", "add", "bob", "--role", "researcher"]);
    let bob = env.json(&["token", "create", "--user", "bob", "--json"])["token"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, body) = http(
        "PUT",
        &format!("{}/api/v1/projects/default/budget", env.url()),
        Some(&bob),
        Some(r#"{"amount": 1000000}"#),
    );
    assert_eq!(code, 403, "{body}");
    eventually(T, "the budget change in the audit trail", || {
        let (_, a) = http(
            "GET",
            &format!("{}/api/v1/audit?action=budget.set", env.url()),
            Some(&token),
            None,
        );
        let (_, o) = http(
            "GET",
            &format!("{}/api/v1/audit?action=budget.override", env.url()),
            Some(&token),
            None,
        );
        (a.contains("project:default") && o.contains(&format!("job:{x}"))).then_some(())
    });
}

#[test]
fn a_budget_emits_one_event_per_threshold_and_blocks_until_raised_sqlite() {
    budget_thresholds_and_block(None);
}

#[test]
fn a_budget_emits_one_event_per_threshold_and_blocks_until_raised_postgres() {
    budget_thresholds_and_block(Some(fresh_postgres("costs_budget")));
}

/// Escrow: each job reserves its largest possible charge before it may
/// run. Ten jobs whose reservations together exceed the budget: only
/// those that fit run (one at a time here, though there is room for
/// four), the others wait with the reason, all finish as finished jobs
/// release what they did not use, and the spend stays within the budget.
fn escrow_admits_what_fits(db: Option<String>) {
    let env = Env::new();
    let extra = config(db).replace("max_vcpus = 2", "max_vcpus = 4");
    let (_up, _token) = up(&env, &extra);
    // 1 CPU of 2 at 36/h: 18/h. A 10 s limit, one attempt plus one
    // interruption's allowance: 18 * 10 / 3600 * 2 = 0.1 reserved per job.
    env.ok(&[
        "budget",
        "set",
        "--project",
        "default",
        "--amount",
        "0.16",
        "--enforce",
        "escrow",
    ]);
    let ids: Vec<String> = (0..10)
        .map(|_| {
            submit(
                &env,
                &[
                    "--cpus",
                    "1",
                    "--mem",
                    "100M",
                    "--timeout",
                    "10s",
                    "--",
                    "sleep",
                    "1",
                ],
            )
        })
        .collect();
    let mut most = 0;
    let mut waited = false;
    eventually(Duration::from_secs(120), "the ten jobs to finish", || {
        let list = env.json(&["jobs", "--json", "--limit", "50"]);
        let jobs = list.as_array().unwrap().clone();
        let running = jobs
            .iter()
            .filter(|j| j["state"] == "RUNNING" || j["state"] == "STARTING")
            .count();
        most = most.max(running);
        waited |= jobs.iter().any(|j| {
            j["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("waiting for budget"))
        });
        let done = ids
            .iter()
            .filter(|id| {
                jobs.iter().any(|j| {
                    j["id"].as_i64().map(|i| i.to_string()).as_deref() == Some(id.as_str())
                        && j["state"] == "SUCCEEDED"
                })
            })
            .count();
        (done == ids.len()).then_some(())
    });
    assert_eq!(most, 1, "only one reservation fits at a time");
    assert!(waited, "the others waited with the reason");
    let b = eventually(T, "every job to be metered", || {
        let r = env.json(&["costs", "--json"]);
        let n: u64 = r["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["records"].as_u64().unwrap())
            .sum();
        (n == 10).then(|| env.json(&["budget", "show", "--project", "default", "--json"]))
    });
    let spend = b["spend"].as_f64().unwrap();
    assert!(spend > 0.0 && spend <= 0.16, "{b}");
}

#[test]
fn escrow_admits_what_fits_sqlite() {
    escrow_admits_what_fits(None);
}

#[test]
fn escrow_admits_what_fits_postgres() {
    escrow_admits_what_fits(Some(fresh_postgres("costs_escrow")));
}

/// Block mode and running workspaces: a new launch is refused, and the
/// running workspace is stopped (its home kept) once the grace period is
/// over, with the reason.
#[test]
fn a_spent_budget_stops_running_workspaces_after_the_grace_period() {
    let env = Env::new();
    let (_up, _token) = up(&env, &config(None));
    let app = "exec python3 -c \"import http.server as h,socketserver as s,sys;H=type('H',(h.SimpleHTTPRequestHandler,),{'address_string':lambda self:'local'});S=type('S',(s.ThreadingMixIn,s.UnixStreamServer),{'daemon_threads':True});S(sys.argv[1],H).serve_forever()\" \"$1\"";
    let cfg = env.path().join("web.toml");
    std::fs::write(
        &cfg,
        format!(
            "name = \"web\"\ntype = \"webapp@1\"\nallow_roles = [\"admin\", \"researcher\"]\nidle_timeout = \"0\"\nmax_lifetime = \"1h\"\n[params]\ncommand = '''{app}'''\n"
        ),
    )
    .unwrap();
    env.ok(&["ws", "type", "approve", "webapp@1"]);
    env.ok(&["ws", "config", "set", cfg.to_str().unwrap()]);
    let w = env.json(&["ws", "launch", "web", "--wait", "--json"]);
    assert_eq!(w["state"], "RUNNING", "{w}");
    let id = w["id"].to_string();
    // Its running session alone spends this budget within a second.
    env.ok(&[
        "budget",
        "set",
        "--project",
        "default",
        "--amount",
        "0.0001",
        "--enforce",
        "block",
        "--grace",
        "3s",
    ]);
    eventually(T, "the budget to block", || {
        let b = env.json(&["budget", "show", "--project", "default", "--json"]);
        (b["blocked"] == true).then_some(())
    });
    // Within the grace period it keeps running; a new launch is refused.
    let out = env.run(&["ws", "launch", "web"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("budget"));
    assert_eq!(env.json(&["ws", "show", &id, "--json"])["state"], "RUNNING");
    let w = eventually(T, "the workspace to be stopped", || {
        let w = env.json(&["ws", "show", &id, "--json"]);
        (w["state"] == "STOPPED").then_some(w)
    });
    assert!(w["reason"].as_str().unwrap_or("").contains("budget"), "{w}");
    // What it ran is charged to it.
    let c = eventually(T, "the workspace's cost", || {
        let out = env.json(&["costs", "--by", "kind", "--json"]);
        out["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["key"] == "workspace")
            .cloned()
    });
    assert!(c["charge"].as_f64().unwrap() > 0.0, "{c}");
}

/// Study storage is charged once a day at its price per GiB-month.
#[test]
fn study_storage_is_charged_per_day() {
    let env = Env::new();
    let extra = config(None).replace("[costs]\n", "[costs]\nstorage_per_gib_month = 3000.0\n");
    let (_up, _token) = up(&env, &extra);
    let dir = env.path().join("data-set");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("a.bin"), vec![7u8; 1024 * 1024]).unwrap();
    env.ok(&["study", "create", "mice"]);
    env.ok(&["study", "upload", "mice", dir.to_str().unwrap()]);
    let row = eventually(T, "the storage charge", || {
        let r = env.json(&["costs", "--by", "kind", "--json"]);
        r["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["key"] == "storage")
            .cloned()
    });
    // 1 MiB for a day at 3000 per GiB-month (30 days): 3000 / 1024 / 30.
    let want = 3000.0 / 1024.0 / 30.0;
    assert!(close(row["charge"].as_f64().unwrap(), want), "{row}");
    // Once a day: later ticks add nothing.
    std::thread::sleep(Duration::from_millis(1000));
    let r = env.json(&["costs", "--by", "kind", "--json"]);
    let again = r["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["key"] == "storage")
        .unwrap()["records"]
        .clone();
    assert_eq!(again, 1, "{r}");
}

/// Escrow reserves a job without a time limit for its queue's
/// `max_run_time`, else the site's default (24 h, which does not fit).
#[test]
fn escrow_assumes_the_queues_max_run_time() {
    let env = Env::new();
    let extra = format!(
        "{}\n[queues.default]\nmax_run_time = \"10s\"\n[queues.long]\n",
        config(None)
    );
    let (_up, _token) = up(&env, &extra);
    env.ok(&[
        "budget",
        "set",
        "--project",
        "default",
        "--amount",
        "0.16",
        "--enforce",
        "escrow",
    ]);
    // 18/h for 10 s, one attempt and one interruption: 0.1 fits.
    let short = submit(&env, &["--cpus", "1", "--mem", "100M", "--", "true"]);
    // 18/h for 24 h does not.
    let long = submit(
        &env,
        &[
            "--queue", "long", "--cpus", "1", "--mem", "100M", "--", "true",
        ],
    );
    wait_state(&env, &short, "SUCCEEDED", T);
    eventually(T, "the long job to wait for budget", || {
        let j = job(&env, &long);
        (j["state"] == "RUNNABLE"
            && j["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("waiting for budget")))
        .then_some(())
    });
}
