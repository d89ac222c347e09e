//! Tests of `run.rs` with real processes.

use super::*;
use std::time::Instant as StdInstant;
use tokio::sync::watch;

#[derive(Debug, Default)]
struct VecSink {
    started: bool,
    chunks: Vec<String>,
}

impl OutputSink for VecSink {
    async fn started(&mut self) {
        self.started = true;
    }
    async fn log(&mut self, text: String) {
        self.chunks.push(text);
    }
}

impl VecSink {
    fn text(&self) -> String {
        self.chunks.concat()
    }
}

fn spec(command: Command) -> ProcessSpec {
    ProcessSpec {
        command,
        cwd: std::env::temp_dir(),
        env: vec![],
        timeout: None,
        success_string: None,
        max_chunk: 64 * 1024,
        flush_interval: Duration::from_millis(250),
        kill_grace: Duration::from_millis(500),
        stdout_file: None,
        stderr_file: None,
        isolation: Default::default(),
        tracker: None,
    }
}

fn sh(script: &str) -> Command {
    Command::Shell(script.to_string())
}

async fn run(spec: &ProcessSpec) -> (ProcessResult, VecSink) {
    let (_tx, mut rx) = watch::channel(None);
    let mut sink = VecSink::default();
    let r = run_process(spec, &mut sink, &mut rx).await;
    (r, sink)
}

/// True when the process is gone (or a zombie waiting to be reaped).
fn is_dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

#[tokio::test]
async fn captures_both_streams_and_the_exit_code() {
    let (r, sink) = run(&spec(sh("echo out; echo err >&2; exit 3"))).await;
    assert!(sink.started);
    assert_eq!(r.exit_code, Some(3));
    assert_eq!(r.signal, None);
    let text = sink.text();
    assert!(text.contains("out\n"), "{text:?}");
    assert!(text.contains("err\n"), "{text:?}");
    assert_eq!(
        r.end(),
        ProcessEnd {
            exit_code: Some(3),
            ..Default::default()
        }
    );
    assert_eq!(r.message(None), None);
}

#[tokio::test]
async fn argv_runs_without_a_shell_and_gets_env_and_cwd() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = spec(Command::Argv(vec![
        "sh".into(),
        "-c".into(),
        "echo \"$TRESTLE_JOB_ID $FOO $TRESTLE_TOKEN\"; pwd; cat".into(),
    ]));
    s.cwd = dir.path().to_path_buf();
    s.env = vec![
        ("TRESTLE_JOB_ID".into(), "42".into()),
        ("FOO".into(), "bar baz".into()),
    ];
    let (r, sink) = run(&s).await;
    assert_eq!(r.exit_code, Some(0));
    let text = sink.text();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("42 bar baz "));
    let cwd = std::fs::canonicalize(dir.path()).unwrap();
    assert_eq!(lines.next(), Some(cwd.to_str().unwrap()));
    // stdin is /dev/null: `cat` ends at once.
    assert_eq!(lines.next(), None);
}

#[tokio::test]
async fn spawn_failure_is_exit_127_with_a_message() {
    let (r, sink) = run(&spec(Command::Argv(vec!["/no/such/program".into()]))).await;
    assert!(!sink.started);
    assert_eq!(r.exit_code, Some(127));
    let msg = r.spawn_error.clone().unwrap();
    assert_eq!(
        msg,
        "trestle: cannot start `/no/such/program`: No such file or directory"
    );
    assert!(sink.text().contains(&msg));
    assert_eq!(r.message(None), Some(msg));
    assert_eq!(
        trestle_core::batch::outcome::attempt_reason(&r.end()),
        trestle_core::AttemptReason::ExitCode
    );
}

#[tokio::test]
async fn timeout_kills_the_whole_group() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("bg.pid");
    let script = format!("sleep 30 & echo $! > {}; sleep 30", pidfile.display());
    let mut s = spec(sh(&script));
    s.timeout = Some(Duration::from_secs(1));
    let t0 = StdInstant::now();
    let (r, sink) = run(&s).await;
    let took = t0.elapsed();
    assert!(r.timed_out);
    assert_eq!(r.exit_code, None);
    assert!(r.signal.is_some());
    assert!(took >= Duration::from_secs(1), "{took:?}");
    assert!(took < Duration::from_secs(4), "{took:?}");
    assert!(
        sink.text()
            .contains("trestle: killed after the timeout of 1s")
    );
    let bg: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let deadline = StdInstant::now() + Duration::from_secs(2);
    while !is_dead(bg) && StdInstant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(is_dead(bg), "background sleep {bg} survived");
    assert_eq!(
        trestle_core::batch::outcome::attempt_reason(&r.end()),
        trestle_core::AttemptReason::Timeout
    );
}

#[tokio::test]
async fn stop_request_kills_and_is_reported() {
    let (tx, mut rx) = watch::channel(None);
    let s = spec(sh("echo started; sleep 30"));
    let mut sink = VecSink::default();
    let stopper = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        tx.send_replace(Some(StopReason::Cancel));
        tx
    });
    let t0 = StdInstant::now();
    let r = run_process(&s, &mut sink, &mut rx).await;
    assert!(t0.elapsed() < Duration::from_secs(3));
    assert_eq!(r.stopped, Some(StopReason::Cancel));
    assert!(r.end().cancelled);
    assert!(sink.text().starts_with("started\n"));
    assert!(sink.text().contains("trestle: cancelled while running"));
    drop(stopper.await.unwrap());

    // A stop requested before the start means no process at all.
    let (_tx, mut rx) = watch::channel(Some(StopReason::Release));
    let mut sink = VecSink::default();
    let r = run_process(&s, &mut sink, &mut rx).await;
    assert!(!sink.started);
    assert!(r.end().released);
}

#[tokio::test]
async fn leftover_background_processes_end_with_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("bg.pid");
    // The background sleep keeps no pipe open, so only the group kill ends it.
    let script = format!(
        "sleep 30 >/dev/null 2>&1 & echo $! > {}; echo done",
        pidfile.display()
    );
    let (r, sink) = run(&spec(sh(&script))).await;
    assert_eq!(r.exit_code, Some(0));
    assert_eq!(sink.text(), "done\n");
    let bg: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let deadline = StdInstant::now() + Duration::from_secs(2);
    while !is_dead(bg) && StdInstant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(is_dead(bg));
}

#[tokio::test]
async fn success_string_and_chunking() {
    let mut s = spec(sh(
        "i=0; while [ $i -lt 3000 ]; do echo \"line $i é\"; i=$((i+1)); done; echo MAGIC-END",
    ));
    s.max_chunk = 1000;
    s.success_string = Some("MAGIC-END".into());
    let (r, sink) = run(&s).await;
    assert_eq!(r.success_found, Some(true));
    assert!(sink.chunks.len() > 30);
    assert!(sink.chunks.iter().all(|c| c.len() <= 1000));
    assert!(!sink.text().contains('\u{FFFD}'));
    let expected: String = (0..3000)
        .map(|i| format!("line {i} é\n"))
        .chain(std::iter::once("MAGIC-END\n".to_string()))
        .collect();
    assert_eq!(sink.text(), expected);

    s.success_string = Some("never printed".into());
    s.command = sh("echo hello");
    let (r, _) = run(&s).await;
    assert_eq!(r.success_found, Some(false));
    assert_eq!(
        trestle_core::batch::outcome::attempt_reason(&r.end()),
        trestle_core::AttemptReason::SuccessStringMissing
    );
}

#[tokio::test]
async fn output_is_flushed_while_running() {
    let (tx, mut rx) = watch::channel(None);
    let mut s = spec(sh("echo early; sleep 1; echo late"));
    s.flush_interval = Duration::from_millis(50);
    struct Timed(Vec<(StdInstant, String)>);
    impl OutputSink for Timed {
        async fn started(&mut self) {}
        async fn log(&mut self, text: String) {
            self.0.push((StdInstant::now(), text));
        }
    }
    let mut sink = Timed(Vec::new());
    let t0 = StdInstant::now();
    let r = run_process(&s, &mut sink, &mut rx).await;
    drop(tx);
    assert_eq!(r.exit_code, Some(0));
    assert_eq!(sink.0[0].1, "early\n");
    assert!(sink.0[0].0 - t0 < Duration::from_millis(700));
    assert_eq!(sink.0.last().unwrap().1, "late\n");
}

#[test]
fn signal_messages() {
    let r = ProcessResult {
        signal: Some(9),
        ..Default::default()
    };
    assert_eq!(
        r.message(None).unwrap(),
        "killed by signal 9 (SIGKILL, exit status 137)"
    );
}

#[test]
fn utf8_aware_cuts() {
    let s = "aé€😀".as_bytes(); // 1 + 2 + 3 + 4 bytes
    assert_eq!(complete_prefix(s, 10), 10);
    assert_eq!(complete_prefix(s, 9), 6);
    assert_eq!(complete_prefix(s, 6), 6);
    assert_eq!(complete_prefix(s, 5), 3);
    assert_eq!(complete_prefix(s, 2), 1);
    assert_eq!(complete_prefix(s, 1), 1);
    // Only the start of a sequence: nothing is complete yet.
    assert_eq!(complete_prefix("😀".as_bytes(), 2), 0);
    // Not UTF-8 at all: cut where asked.
    assert_eq!(complete_prefix(&[0x80, 0x80, 0x80, 0x80, 0x80], 3), 3);

    let mut c = Chunker::new(4);
    let chunks = c.push("ab€cd".as_bytes());
    assert_eq!(chunks, vec!["ab".to_string(), "€c".to_string()]);
    assert_eq!(c.flush(true).as_deref(), Some("d"));
    assert!(!c.ends_line());
    let euro = "€".as_bytes();
    assert!(c.push(&euro[..2]).is_empty());
    assert_eq!(c.flush(false), None);
    assert!(c.push(&euro[2..]).is_empty());
    assert_eq!(c.flush(false).as_deref(), Some("€"));
}

#[tokio::test]
async fn output_and_error_files_get_copies_of_the_streams() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = spec(sh("echo out1; echo err1 >&2; echo out2"));
    s.cwd = dir.path().to_path_buf();
    s.stdout_file = Some("logs/job.out".into());
    s.stderr_file = Some("logs/job.err".into());
    let (r, sink) = run(&s).await;
    assert_eq!(r.exit_code, Some(0));
    assert!(sink.text().contains("err1"), "the log still has everything");
    let out = std::fs::read_to_string(dir.path().join("logs/job.out")).unwrap();
    let err = std::fs::read_to_string(dir.path().join("logs/job.err")).unwrap();
    assert_eq!(out, "out1\nout2\n");
    assert_eq!(err, "err1\n");
    // Without an error file, stderr goes with stdout.
    let mut s = spec(sh("echo a; echo b >&2"));
    s.cwd = dir.path().to_path_buf();
    s.stdout_file = Some(dir.path().join("both.txt"));
    run(&s).await;
    let both = std::fs::read_to_string(dir.path().join("both.txt")).unwrap();
    assert!(both.contains("a\n") && both.contains("b\n"), "{both:?}");
}

#[tokio::test]
async fn a_job_killed_as_the_worker_stops_is_released_not_failed() {
    // The job dies of SIGTERM; the worker's own stop follows a moment
    // later (as when Slurm signals every process of a cancelled pilot).
    let (tx, mut rx) = watch::channel(None);
    let s = spec(sh("kill -TERM $$"));
    let stopper = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let _ = tx.send(Some(StopReason::Release));
        tokio::time::sleep(Duration::from_secs(2)).await;
        drop(tx);
    });
    let mut sink = VecSink::default();
    let r = run_process(&s, &mut sink, &mut rx).await;
    assert_eq!(r.signal, Some(libc::SIGTERM));
    assert_eq!(r.stopped, Some(StopReason::Release));
    assert!(r.end().released);
    stopper.await.unwrap();
    // Without a stop request it is the job's own failure.
    let (r, _) = run(&spec(sh("kill -TERM $$"))).await;
    assert_eq!(r.signal, Some(libc::SIGTERM));
    assert_eq!(r.stopped, None);
    assert!(!r.end().released);
}
