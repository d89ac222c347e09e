//! Workspaces end to end through the real binary: the catalogue (types
//! imported not approved, approval, configurations), launching a generic
//! web app on a local worker, stop with the home saved, start with it
//! restored, an app that never becomes ready, bad input refused with the
//! field named and nothing launched, and another user seeing nothing.

mod common;
#[path = "support/identity.rs"]
mod identity;

use common::*;
use identity::*;
use serde_json::Value;
use std::time::Duration;

fn write(env: &Env, name: &str, text: &str) -> String {
    let p = env.path().join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn show(env: &Env, id: &str) -> Value {
    env.json(&["ws", "show", id, "--json"])
}

fn api_error(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The saved home archive of workspace `id` under the data directory.
fn saved_home(env: &Env, id: &str) -> Option<std::path::PathBuf> {
    let dir = env
        .path()
        .join("data/objects/workspaces")
        .join(id)
        .join("home");
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "tar"))
}

#[test]
fn launch_stop_start_and_terminate_a_web_app() {
    let env = Env::new();
    let (_up, _admin) = up(&env, "");
    // Shipped types arrive not approved.
    let types = env.json(&["ws", "types", "--all", "--json"]);
    let names: Vec<&str> = types
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for n in ["jupyterlab", "terminal", "webapp"] {
        assert!(names.contains(&n), "{names:?}");
    }
    assert!(
        types
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["approval"] == "pending")
    );

    // Every start appends a line to a file in the home, then serves it.
    let app = "echo started >> \"$HOME/starts.txt\"; exec python3 -c \"import http.server as h,socketserver as s,sys;H=type('H',(h.SimpleHTTPRequestHandler,),{'address_string':lambda self:'local'});S=type('S',(s.ThreadingMixIn,s.UnixStreamServer),{'daemon_threads':True});S(sys.argv[1],H).serve_forever()\" \"$1\"";
    let cfg = write(
        &env,
        "web.toml",
        &format!(
            "name = \"web\"\ntype = \"webapp@1\"\nallow_roles = [\"admin\", \"researcher\"]\nidle_timeout = \"0\"\nmax_lifetime = \"1h\"\n[params]\ncommand = '''{app}'''\n"
        ),
    );
    env.ok(&["ws", "config", "set", &cfg]);
    let out = env.run(&["ws", "launch", "web"]);
    assert!(!out.status.success());
    assert!(
        api_error(&out).contains("not approved"),
        "{}",
        api_error(&out)
    );
    assert_eq!(
        env.json(&["ws", "list", "--json"]),
        serde_json::json!([]),
        "nothing launched"
    );

    env.ok(&["ws", "type", "approve", "webapp@1"]);
    let w = env.json(&["ws", "launch", "web", "--wait", "--json"]);
    assert_eq!(w["state"], "RUNNING", "{w}");
    let id = w["id"].to_string();
    assert!(
        w["url"].as_str().unwrap().ends_with(&format!("/ws/{id}/")),
        "{w}"
    );
    assert!(w["deadline"].as_i64().unwrap() > w["running_since"].as_i64().unwrap());

    // Stop saves the home; start restores it (the file gains a line).
    let s = env.ok(&["ws", "stop", &id, "--wait"]);
    assert!(s.contains("STOPPED"), "{s}");
    let w = show(&env, &id);
    assert_eq!(w["state"], "STOPPED");
    assert!(w.get("reason").is_none(), "{w}");
    assert!(w["home_bytes"].as_u64().unwrap() > 0, "{w}");
    env.ok(&["ws", "start", &id, "--wait"]);
    env.ok(&["ws", "stop", &id, "--wait"]);
    let tar = saved_home(&env, &id).expect("a saved home");
    let out = std::process::Command::new("tar")
        .args(["-xOf", tar.to_str().unwrap(), "starts.txt"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.lines().count(),
        2,
        "restored and extended: {text:?} {out:?}"
    );

    // Another user sees nothing of it.
    let bob = user_with_token(&env, "bob", &["--project", "default"]);
    let out = run_as(&env, &bob, &["ws", "show", &id]);
    assert!(
        api_error(&out).contains("not found") || api_error(&out).contains("does not exist"),
        "{}",
        api_error(&out)
    );
    assert_eq!(
        json_as(&env, &bob, &["ws", "list", "--json"]),
        serde_json::json!([])
    );
    let out = run_as(&env, &bob, &["ws", "terminate", &id]);
    assert!(!out.status.success());

    // Terminate deletes the home.
    let s = env.ok(&["ws", "terminate", &id, "--wait"]);
    assert!(s.contains("TERMINATED"), "{s}");
    assert!(saved_home(&env, &id).is_none(), "the home is gone");
    let out = env.run(&["ws", "start", &id]);
    assert!(!out.status.success(), "a terminated workspace cannot start");
}

#[test]
fn bad_launches_name_the_field_and_an_app_that_never_listens_fails() {
    let env = Env::new();
    let (_up, _admin) = up(&env, "");
    let ty = write(
        &env,
        "never.toml",
        "name = \"never\"\nversion = \"1\"\ncommand = [\"sh\", \"-c\", \"echo getting ready; sleep 600\", \"{socket}\"]\nstart_timeout = \"3s\"\nready_path = \"/\"\n[[params]]\nname = \"size\"\ntype = \"int\"\nmin = 1\nmax = 4\ndefault = \"1\"\n",
    );
    let out = env.ok(&["ws", "type", "import", &ty]);
    assert!(out.contains("not approved"), "{out}");
    env.ok(&["ws", "type", "approve", "never@1"]);
    let cfg = write(
        &env,
        "never-cfg.toml",
        "name = \"never\"\ntype = \"never@1\"\nallow_roles = [\"admin\"]\n",
    );
    env.ok(&["ws", "config", "set", &cfg]);

    for (args, needle) in [
        (
            vec!["ws", "launch", "never", "--param", "size=9"],
            "params.size",
        ),
        (
            vec!["ws", "launch", "never", "--param", "colour=red"],
            "params.colour",
        ),
        (vec!["ws", "launch", "never", "--name", "a\u{1}b"], "name"),
        (vec!["ws", "launch", "nope"], "config"),
    ] {
        let out = env.run(&args);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            api_error(&out).contains(needle),
            "{args:?}: {}",
            api_error(&out)
        );
    }
    // A role the configuration does not allow sees it as absent.
    let bob = user_with_token(&env, "bob", &["--project", "default"]);
    let out = run_as(&env, &bob, &["ws", "launch", "never"]);
    assert!(api_error(&out).contains("config"), "{}", api_error(&out));
    assert_eq!(
        json_as(&env, &bob, &["ws", "configs", "--json"]),
        serde_json::json!([])
    );
    assert_eq!(
        env.json(&["ws", "list", "--json"]),
        serde_json::json!([]),
        "nothing launched"
    );

    // The app never becomes ready: FAILED, its output kept.
    let out = env.run(&["ws", "launch", "never", "--wait", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let w: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(w["state"], "FAILED", "{w}");
    assert!(
        w["reason"].as_str().unwrap().contains("start timeout"),
        "{w}"
    );
    let id = w["id"].to_string();
    let log = eventually(Duration::from_secs(20), "the app's output", || {
        let l = env.ok(&["ws", "log", &id]);
        l.contains("getting ready").then_some(l)
    });
    assert!(log.contains("did not become ready"), "{log}");

    // A revoked version cannot launch; the workspace shows it.
    env.ok(&["ws", "type", "revoke", "never@1"]);
    let out = env.run(&["ws", "launch", "never"]);
    assert!(api_error(&out).contains("revoked"), "{}", api_error(&out));
    assert_eq!(show(&env, &id)["type_revoked"], true);
}

#[test]
fn a_killed_worker_fails_the_workspace_and_start_brings_back_its_home() {
    let env = Env::new();
    let (_up, _admin) = up(&env, "lease = \"3s\"\n");
    env.ok(&["ws", "type", "approve", "webapp@1"]);
    let app = "echo started >> \"$HOME/starts.txt\"; exec python3 -c \"import http.server as h,socketserver as s,sys;H=type('H',(h.SimpleHTTPRequestHandler,),{'address_string':lambda self:'local'});S=type('S',(s.ThreadingMixIn,s.UnixStreamServer),{'daemon_threads':True});S(sys.argv[1],H).serve_forever()\" \"$1\"";
    let cfg = write(
        &env,
        "web.toml",
        &format!(
            "name = \"web\"\ntype = \"webapp@1\"\nallow_roles = [\"admin\"]\n[params]\ncommand = '''{app}'''\n"
        ),
    );
    env.ok(&["ws", "config", "set", &cfg]);
    let w = env.json(&["ws", "launch", "web", "--wait", "--json"]);
    let id = w["id"].to_string();
    env.ok(&["ws", "stop", &id, "--wait"]);
    env.ok(&["ws", "start", &id, "--wait"]);
    // kill -9 the worker hosting it.
    let worker = show(&env, &id)["worker"]
        .as_str()
        .expect("a hosting worker")
        .to_string();
    let workers = env.json(&["workers", "--json"]);
    let pid = workers
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == worker.as_str())
        .expect("the worker")["pid"]
        .as_i64()
        .unwrap();
    unsafe {
        libc::kill(pid as i32, libc::SIGKILL);
    }
    let w = eventually(Duration::from_secs(60), "the workspace to fail", || {
        let w = show(&env, &id);
        (w["state"] == "FAILED").then_some(w)
    });
    assert!(w["reason"].as_str().unwrap().contains("worker lost"), "{w}");
    // Start brings it back from the last saved home, on a new worker.
    let s = env.ok(&["ws", "start", &id, "--wait"]);
    assert!(s.contains("RUNNING"), "{s}");
    env.ok(&["ws", "stop", &id, "--wait"]);
    let tar = saved_home(&env, &id).expect("a saved home");
    let out = std::process::Command::new("tar")
        .args(["-xOf", tar.to_str().unwrap(), "starts.txt"])
        .output()
        .unwrap();
    // Started three times: the second start's line was lost with its
    // worker (never saved); the third added its own to the first save.
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        2,
        "{out:?}"
    );
}

/// The directory holding `jupyter` (the test command installs JupyterLab
/// and names it in `TRESTLE_TEST_JUPYTER_BIN`).
pub fn jupyter_bin() -> String {
    std::env::var("TRESTLE_TEST_JUPYTER_BIN").expect(
        "TRESTLE_TEST_JUPYTER_BIN names the bin directory of a JupyterLab install (scripts/test.sh installs one)",
    )
}

#[test]
fn jupyterlab_starts_on_its_socket_with_its_token() {
    let env = Env::new();
    let path = format!(
        "{}:{}",
        jupyter_bin(),
        std::env::var("PATH").unwrap_or_default()
    );
    env.set_var("PATH", &path);
    let (_up, _admin) = up(&env, "");
    env.ok(&["ws", "type", "approve", "jupyterlab@1"]);
    let cfg = write(
        &env,
        "lab.toml",
        "name = \"lab\"\ntype = \"jupyterlab@1\"\nallow_roles = [\"admin\"]\nmemory = \"1G\"\n",
    );
    env.ok(&["ws", "config", "set", &cfg]);
    let w = env.json(&["ws", "launch", "lab", "--wait", "--json"]);
    assert_eq!(
        w["state"],
        "RUNNING",
        "{w}\n{}",
        env.ok(&["ws", "log", &w["id"].to_string()])
    );
    let id = w["id"].to_string();
    // Its token is in no process's command line on the host.
    let ps = std::process::Command::new("ps")
        .args(["-eo", "args"])
        .output()
        .unwrap();
    let ps = String::from_utf8_lossy(&ps.stdout);
    let lab = ps
        .lines()
        .find(|l| l.contains("jupyter") && l.contains("ServerApp.sock"))
        .expect("jupyter runs");
    assert!(!lab.contains("token"), "{lab}");
    env.ok(&["ws", "terminate", &id, "--wait"]);
}
