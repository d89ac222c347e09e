//! The whole worker against a small in-memory fake of the server's worker
//! API (register, lease, updates, deregister, inputs, outputs).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use trestle_agent::{WorkerConfig, WorkerExit};
use trestle_core::api::*;
use trestle_core::{AttemptReason, Capacity, Command, JobSpec, Resources};

#[derive(Default)]
struct State {
    registrations: Vec<WorkerRegistration>,
    workers: HashSet<String>,
    queue: VecDeque<(i64, JobSpec)>,
    leased: HashMap<AttemptKey, String>,
    updates: Vec<Update>,
    heartbeats: usize,
    cancel: HashSet<i64>,
    stale: HashSet<i64>,
    /// Answer this many updates calls with 503 first.
    fail_updates: usize,
    deregistered: Vec<String>,
    inputs: Vec<(String, Vec<u8>)>,
    outputs: Vec<(String, Vec<u8>)>,
    /// Answer registrations with 409 upgrade-required.
    refuse_version: bool,
    /// Answer leases with 409 upgrade-required once this many leases were
    /// answered.
    drain_after_leases: Option<usize>,
    leases_answered: usize,
}

fn upgrade_required() -> (u16, Vec<u8>) {
    (
        409,
        br#"{"error":{"code":"upgrade-required","message":"this worker is too old"}}"#.to_vec(),
    )
}

#[derive(Clone, Default)]
struct Fake(Arc<Mutex<State>>);

fn json<T: serde::Serialize>(status: u16, v: &T) -> (u16, Vec<u8>) {
    (status, serde_json::to_vec(v).unwrap())
}

fn not_found() -> (u16, Vec<u8>) {
    (
        404,
        br#"{"error":{"code":"not-found","message":"unknown worker"}}"#.to_vec(),
    )
}

impl Fake {
    fn st(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap()
    }

    fn add_job(&self, id: i64, spec: JobSpec) {
        self.st().queue.push_back((id, spec));
    }

    fn finished(&self, job_id: i64) -> Option<(AttemptReason, Option<i32>, Option<String>)> {
        self.st().updates.iter().find_map(|u| match u {
            Update::Finished {
                at,
                reason,
                exit_code,
                message,
                ..
            } if at.job_id == job_id => Some((*reason, *exit_code, message.clone())),
            _ => None,
        })
    }

    fn started(&self, job_id: i64) -> bool {
        self.st()
            .updates
            .iter()
            .any(|u| matches!(u, Update::Started { at, .. } if at.job_id == job_id))
    }

    fn log(&self, job_id: i64) -> String {
        let st = self.st();
        let mut chunks: Vec<(u32, String)> = st
            .updates
            .iter()
            .filter_map(|u| match u {
                Update::Log { at, seq, data } if at.job_id == job_id => Some((*seq, data.clone())),
                _ => None,
            })
            .collect();
        chunks.sort_by_key(|c| c.0);
        chunks.into_iter().map(|c| c.1).collect()
    }

    async fn handle(&self, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
        let path = path.split('?').next().unwrap_or("");
        let parts: Vec<&str> = path.trim_start_matches("/api/v1/").split('/').collect();
        match (method, parts.as_slice()) {
            ("POST", ["workers"]) => {
                let reg: WorkerRegistration = serde_json::from_slice(body).unwrap();
                let mut st = self.st();
                if st.refuse_version {
                    return upgrade_required();
                }
                let id = format!("w{}", st.registrations.len() + 1);
                st.registrations.push(reg.clone());
                st.workers.insert(id.clone());
                json(
                    201,
                    &WorkerView {
                        id,
                        host: reg.host,
                        pid: reg.pid,
                        capacity: reg.capacity,
                        compute_env: reg.compute_env,
                        instance: reg.instance,
                        isolation: reg.isolation,
                        running_jobs: vec![],
                        started_at: 0,
                        last_heartbeat: 0,
                        tunnel: false,
                    },
                )
            }
            ("DELETE", ["workers", id]) => {
                let mut st = self.st();
                st.workers.remove(*id);
                st.deregistered.push(id.to_string());
                (204, vec![])
            }
            ("POST", ["workers", id, "lease"]) => {
                let req: LeaseRequest = serde_json::from_slice(body).unwrap();
                assert_eq!(
                    req.kinds,
                    vec![
                        trestle_core::task::TaskKind::Batch,
                        trestle_core::task::TaskKind::Session
                    ],
                    "the worker says what it runs"
                );
                {
                    let mut st = self.st();
                    if st
                        .drain_after_leases
                        .is_some_and(|n| st.leases_answered >= n)
                    {
                        return upgrade_required();
                    }
                    st.leases_answered += 1;
                }
                let deadline = Instant::now() + Duration::from_millis(req.wait_ms.min(300));
                loop {
                    {
                        let mut st = self.st();
                        if !st.workers.contains(*id) {
                            return not_found();
                        }
                        let mut free = req.free;
                        let mut leases = Vec::new();
                        while leases.len() < req.max_jobs as usize {
                            let Some((_, spec)) = st.queue.front() else {
                                break;
                            };
                            if !free.fits(&spec.resources) {
                                break;
                            }
                            let (job_id, spec) = st.queue.pop_front().unwrap();
                            free = free.minus(&spec.resources);
                            let token = format!("tok-{job_id}");
                            st.leased
                                .insert(AttemptKey { job_id, attempt: 1 }, token.clone());
                            leases.push(Lease {
                                job_id,
                                attempt: 1,
                                token,
                                spec,
                                expires_at: 0,
                                full_log: false,
                                run_as: None,
                            });
                        }
                        if !leases.is_empty() || Instant::now() >= deadline {
                            return json(
                                200,
                                &LeaseResponse {
                                    leases,
                                    lease_ms: 3000,
                                },
                            );
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            ("POST", ["workers", id, "updates"]) => {
                let req: UpdatesRequest = serde_json::from_slice(body).unwrap();
                let mut st = self.st();
                if !st.workers.contains(*id) {
                    return not_found();
                }
                if st.fail_updates > 0 {
                    st.fail_updates -= 1;
                    return (503, b"try later".to_vec());
                }
                st.heartbeats += req.heartbeat.len();
                let mut cancel = Vec::new();
                let mut stale: Vec<AttemptKey> = Vec::new();
                for u in req.updates {
                    let key = AttemptKey {
                        job_id: u.attempt().job_id,
                        attempt: u.attempt().attempt,
                    };
                    if !st.leased.contains_key(&key) {
                        continue; // fenced: not (or no longer) this lease
                    }
                    if let Update::Finished { at, .. } = &u {
                        st.leased.remove(&AttemptKey {
                            job_id: at.job_id,
                            attempt: at.attempt,
                        });
                    }
                    st.updates.push(u);
                }
                for key in st.leased.keys() {
                    if st.cancel.contains(&key.job_id) {
                        cancel.push(*key);
                    }
                }
                let lost: Vec<AttemptKey> = st
                    .leased
                    .keys()
                    .filter(|k| st.stale.contains(&k.job_id))
                    .copied()
                    .collect();
                for key in lost {
                    st.leased.remove(&key);
                    stale.push(key);
                }
                json(200, &UpdatesResponse { stale, cancel })
            }
            ("GET", ["jobs", _, "inputs"]) => {
                let files = self
                    .st()
                    .inputs
                    .iter()
                    .map(|(p, b)| FileEntry {
                        path: p.clone(),
                        size: b.len() as u64,
                    })
                    .collect();
                json(
                    200,
                    &FileList {
                        files,
                        attempt: None,
                    },
                )
            }
            ("GET", ["jobs", _, "inputs", rest @ ..]) => {
                let want = rest.join("/");
                match self.st().inputs.iter().find(|(p, _)| *p == want) {
                    Some((_, b)) => (200, b.clone()),
                    None => not_found(),
                }
            }
            ("PUT", ["jobs", job, "attempts", n, "outputs", rest @ ..]) => {
                let name = format!("{job}/{n}/{}", rest.join("/"));
                self.st().outputs.push((name, body.to_vec()));
                (204, vec![])
            }
            _ => (
                404,
                br#"{"error":{"code":"no-route","message":"no route"}}"#.to_vec(),
            ),
        }
    }
}

async fn serve(sock: TcpStream, fake: Fake) {
    let _ = sock.set_nodelay(true);
    let (r, mut w) = sock.into_split();
    let mut r = BufReader::new(r);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let mut it = line.split_whitespace();
        let method = it.next().unwrap_or_default().to_string();
        let target = it.next().unwrap_or_default().to_string();
        let mut len = 0;
        let mut chunked = false;
        loop {
            let mut h = String::new();
            r.read_line(&mut h).await.unwrap();
            let h = h.trim_end().to_ascii_lowercase();
            if h.is_empty() {
                break;
            }
            if let Some(v) = h.strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
            if h.starts_with("transfer-encoding:") && h.contains("chunked") {
                chunked = true;
            }
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body).await.unwrap();
        if chunked {
            loop {
                let mut size = String::new();
                r.read_line(&mut size).await.unwrap();
                let n = usize::from_str_radix(size.trim(), 16).unwrap();
                let mut chunk = vec![0; n + 2];
                r.read_exact(&mut chunk).await.unwrap();
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        }
        let (status, out) = fake.handle(&method, &target, &body).await;
        // One write: a second small write would wait for a delayed ACK.
        let mut msg = format!(
            "HTTP/1.1 {status} X\r\ncontent-length: {}\r\n\r\n",
            out.len()
        )
        .into_bytes();
        msg.extend_from_slice(&out);
        if w.write_all(&msg).await.is_err() {
            return;
        }
    }
}

async fn start() -> (Fake, String) {
    let fake = Fake::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let f = fake.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            tokio::spawn(serve(sock, f.clone()));
        }
    });
    (fake, url)
}

fn spec(command: Command) -> JobSpec {
    JobSpec {
        name: "job".into(),
        queue: "default".into(),
        key: None,
        command,
        env: Default::default(),
        resources: Resources {
            cpus: 1,
            mem_mib: 100,
            gpus: 0,
        },
        timeout_secs: 0,
        max_attempts: 1,
        success_string: None,
        retry_exit_codes: vec![],
        inputs: None,
        workdir: None,
        priority: 0,
        tags: Default::default(),
        project: None,
        owner: None,
        flow: Default::default(),
        task: Default::default(),
        session: None,
        studies: Vec::new(),
    }
}

fn sh(s: &str) -> JobSpec {
    spec(Command::Shell(s.into()))
}

fn config(url: &str, work: &std::path::Path) -> WorkerConfig {
    let mut c = WorkerConfig::new(vec![url.to_string()], Some("t".into()));
    c.capacity = Capacity {
        cpus: 4,
        mem_mib: 4000,
        gpus: 0,
    };
    c.work_dir = work.join("scratch");
    c.poll_wait_ms = 200;
    c.keep_scratch = false;
    // These jobs have no owner; as root (the test machine) the default
    // would refuse them for want of a Unix account. The sandbox runs them.
    c.isolation = trestle_agent::IsolationSetting::Sandbox;
    c
}

async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_jobs_uploads_outputs_and_exits_when_idle() {
    let (fake, url) = start().await;
    let dir = tempfile::tempdir().unwrap();
    fake.add_job(1, sh("echo hello; echo oops >&2"));
    fake.add_job(2, sh("exit 3"));
    fake.add_job(
        3,
        sh("mkdir -p res && echo 42 > res/answer.txt && cat input/data.txt"),
    );
    let mut with_inputs = sh("cat input/data.txt; echo DONE");
    with_inputs.inputs = Some("u1".into());
    with_inputs.success_string = Some("DONE".into());
    fake.add_job(4, with_inputs);
    fake.add_job(5, spec(Command::Argv(vec!["/no/such/program".into()])));
    fake.st()
        .inputs
        .push(("input/data.txt".into(), b"staged!\n".to_vec()));

    let mut cfg = config(&url, dir.path());
    cfg.idle_exit = Some(Duration::from_millis(600));
    let exit = trestle_agent::run_until(cfg, std::future::pending())
        .await
        .unwrap();
    assert_eq!(exit, WorkerExit::Idle);

    assert_eq!(
        fake.finished(1),
        Some((AttemptReason::Success, Some(0), None))
    );
    let log1 = fake.log(1);
    assert!(
        log1.contains("hello\n") && log1.contains("oops\n"),
        "{log1:?}"
    );
    assert_eq!(fake.finished(2).unwrap().0, AttemptReason::ExitCode);
    assert_eq!(fake.finished(2).unwrap().1, Some(3));
    // Job 3 has no inputs: `cat` fails, but its output is uploaded anyway.
    assert_eq!(fake.finished(3).unwrap().0, AttemptReason::ExitCode);
    assert_eq!(fake.finished(4).unwrap().0, AttemptReason::Success);
    assert!(fake.log(4).starts_with("staged!\nDONE\n"));
    let (reason, code, msg) = fake.finished(5).unwrap();
    assert_eq!((reason, code), (AttemptReason::ExitCode, Some(127)));
    assert!(msg.unwrap().contains("cannot start `/no/such/program`"));
    assert!(!fake.started(5));

    let st = fake.st();
    let outputs: Vec<&str> = st.outputs.iter().map(|(n, _)| n.as_str()).collect();
    // Staged inputs are not outputs.
    assert_eq!(outputs, ["3/1/res/answer.txt"]);
    assert_eq!(st.outputs[0].1, b"42\n");
    // Per attempt: started, then logs, then finished last.
    for job in 1..=4 {
        let kinds: Vec<&str> = st
            .updates
            .iter()
            .filter(|u| u.attempt().job_id == job)
            .map(|u| match u {
                Update::Started { .. } => "started",
                Update::Log { .. } => "log",
                Update::Finished { .. } => "finished",
            })
            .collect();
        assert_eq!(kinds.first(), Some(&"started"), "job {job}: {kinds:?}");
        assert_eq!(kinds.last(), Some(&"finished"), "job {job}: {kinds:?}");
    }
    assert_eq!(st.registrations.len(), 1);
    assert_eq!(st.registrations[0].capacity.cpus, 4);
    assert_eq!(st.registrations[0].version, trestle_core::VERSION);
    assert_eq!(st.deregistered, ["w1"]);
    // Scratch directories are gone, and so is the root the worker created.
    assert!(!dir.path().join("scratch").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_releases_running_jobs_and_cancel_kills() {
    let (fake, url) = start().await;
    let dir = tempfile::tempdir().unwrap();
    fake.add_job(1, sh("echo running; sleep 30"));
    fake.add_job(2, sh("sleep 30"));
    let mut cfg = config(&url, dir.path());
    cfg.kill_grace = Duration::from_millis(300);
    let (tx, rx) = watch::channel(false);
    let worker = tokio::spawn(trestle_agent::run(cfg, rx));
    wait_for("both jobs to start", || fake.started(1) && fake.started(2)).await;
    fake.st().cancel.insert(2);
    wait_for("job 2 to be cancelled", || fake.finished(2).is_some()).await;
    assert_eq!(fake.finished(2).unwrap().0, AttemptReason::Cancelled);
    // Heartbeats flow while job 1 runs.
    wait_for("heartbeats", || fake.st().heartbeats > 0).await;
    let t0 = Instant::now();
    tx.send(true).unwrap();
    let exit = worker.await.unwrap().unwrap();
    assert_eq!(exit, WorkerExit::Shutdown);
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert_eq!(fake.finished(1).unwrap().0, AttemptReason::Released);
    assert!(fake.log(1).starts_with("running\n"));
    assert_eq!(fake.st().deregistered, ["w1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registers_again_when_the_server_forgets_the_worker() {
    let (fake, url) = start().await;
    let dir = tempfile::tempdir().unwrap();
    let (tx, rx) = watch::channel(false);
    let worker = tokio::spawn(trestle_agent::run(config(&url, dir.path()), rx));
    wait_for("registration", || fake.st().registrations.len() == 1).await;
    fake.st().workers.clear(); // "server restarted"
    wait_for("re-registration", || fake.st().registrations.len() == 2).await;
    fake.add_job(1, sh("true"));
    wait_for("the job", || fake.finished(1).is_some()).await;
    tx.send(true).unwrap();
    assert_eq!(worker.await.unwrap().unwrap(), WorkerExit::Shutdown);
    assert_eq!(fake.st().deregistered, ["w2"]);
}

/// Throughput smoke test. `MANY_JOBS`, `MANY_CPUS` and `MANY_PREFETCH`
/// scale it up by hand (`cargo test -p trestle-agent --test worker many --
/// --nocapture` prints the time taken).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_short_jobs() {
    let (fake, url) = start().await;
    let dir = tempfile::tempdir().unwrap();
    let n: i64 = std::env::var("MANY_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    for i in 1..=n {
        fake.add_job(i, spec(Command::Argv(vec!["true".into()])));
    }
    let mut cfg = config(&url, dir.path());
    cfg.idle_exit = Some(Duration::from_millis(300));
    cfg.prefetch = std::env::var("MANY_PREFETCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    if let Some(cpus) = std::env::var("MANY_CPUS").ok().and_then(|v| v.parse().ok()) {
        cfg.capacity.cpus = cpus;
    }
    let t0 = Instant::now();
    let exit = trestle_agent::run_until(cfg, std::future::pending())
        .await
        .unwrap();
    assert_eq!(exit, WorkerExit::Idle);
    let st = fake.st();
    let done = st
        .updates
        .iter()
        .filter(|u| {
            matches!(
                u,
                Update::Finished {
                    reason: AttemptReason::Success,
                    ..
                }
            )
        })
        .count();
    assert_eq!(done, n as usize);
    eprintln!("{n} jobs in {:?}", t0.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_an_outage_and_drops_stale_attempts() {
    let (fake, url) = start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&url, dir.path());
    cfg.capacity.cpus = 1;
    cfg.idle_exit = Some(Duration::from_millis(500));
    fake.add_job(1, sh("sleep 30"));
    fake.add_job(
        2,
        sh("for i in 1 2 3 4 5; do echo line $i; sleep 0.1; done"),
    );
    let worker = tokio::spawn(trestle_agent::run_until(cfg, std::future::pending()));
    wait_for("job 1 to start", || fake.started(1)).await;
    // The lease on job 1 is lost: the worker kills it and says nothing more.
    fake.st().stale.insert(1);
    // Job 2 runs while the server fails updates for a while.
    wait_for("job 2 to be leased", || fake.st().queue.is_empty()).await;
    fake.st().fail_updates = 3;
    assert_eq!(worker.await.unwrap().unwrap(), WorkerExit::Idle);
    assert_eq!(fake.finished(1), None);
    assert_eq!(fake.finished(2).unwrap().0, AttemptReason::Success);
    let expected: String = (1..=5).map(|i| format!("line {i}\n")).collect();
    assert_eq!(fake.log(2), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_the_server_will_not_take_exits_cleanly() {
    let (fake, url) = start().await;
    let dir = tempfile::tempdir().unwrap();
    fake.st().refuse_version = true;
    fake.add_job(1, sh("echo never"));
    let exit = trestle_agent::run_until(config(&url, dir.path()), std::future::pending())
        .await
        .unwrap();
    assert_eq!(exit, WorkerExit::UpgradeRequired);
    assert!(fake.finished(1).is_none(), "nothing ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn told_to_upgrade_a_worker_drains_its_running_jobs_then_exits() {
    let (fake, url) = start().await;
    let dir = tempfile::tempdir().unwrap();
    // One job is leased; every later lease answers upgrade-required.
    fake.st().drain_after_leases = Some(1);
    fake.add_job(1, sh("sleep 1; echo finished"));
    let exit = trestle_agent::run_until(config(&url, dir.path()), std::future::pending())
        .await
        .unwrap();
    assert_eq!(exit, WorkerExit::UpgradeRequired);
    assert_eq!(
        fake.finished(1),
        Some((AttemptReason::Success, Some(0), None)),
        "the running job finished and reported; it was not handed back or failed"
    );
    assert!(fake.log(1).contains("finished"));
    assert_eq!(fake.st().deregistered.len(), 1, "it deregistered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_cgroups_limits_fall_back_to_rlimits_and_the_status_says_so() {
    let (fake, url) = start().await;
    let dir = tempfile::tempdir().unwrap();
    // 100 MiB of memory: a 400 MiB string cannot be made.
    fake.add_job(
        1,
        spec(Command::Argv(vec![
            "perl".into(),
            "-e".into(),
            "$x = 'x' x (400 * 1024 * 1024); print length($x), \"\\n\"".into(),
        ])),
    );
    fake.add_job(2, sh("echo small"));
    let mut cfg = config(&url, dir.path());
    cfg.cgroups = false;
    cfg.idle_exit = Some(Duration::from_millis(600));
    let exit = trestle_agent::run_until(cfg, std::future::pending())
        .await
        .unwrap();
    assert_eq!(exit, WorkerExit::Idle);
    let (reason, code, _) = fake.finished(1).unwrap();
    assert_eq!(reason, AttemptReason::ExitCode, "the allocation failed");
    assert_ne!(code, Some(0));
    assert!(!fake.log(1).contains("419430400"), "{}", fake.log(1));
    assert_eq!(fake.finished(2).unwrap().0, AttemptReason::Success);
    let st = fake.st();
    let iso = st.registrations[0].isolation.clone().unwrap();
    assert_eq!(iso.mode, "sandbox");
    assert!(iso.limits.starts_with("rlimits (no cgroup"), "{iso:?}");
}
