//! Object storage on a real S3 API server (`moto_server` from PyPI, which
//! `./scripts/test.sh` installs): the upload-folder flow and outputs
//! through the real binary, with credentials from the usual `AWS_*`
//! variables, and again from the `[s3]` table of `trestle.toml`.

mod common;

use common::*;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const T: Duration = Duration::from_secs(90);
const BUCKET: &str = "trestle-e2e";

/// A `moto_server` on a free port, stopped when dropped.
struct Moto {
    child: Child,
    url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn moto_program() -> String {
    if let Ok(p) = std::env::var("TRESTLE_TEST_MOTO_SERVER") {
        return p;
    }
    let venv = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../.venv-test/bin/moto_server"
    );
    if std::path::Path::new(venv).exists() {
        return venv.to_string();
    }
    "moto_server".to_string()
}

fn moto(dir: &std::path::Path) -> Moto {
    let port = free_port();
    let program = moto_program();
    let child = Command::new(&program)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(dir.join("moto.log")).unwrap()))
        .spawn()
        .unwrap_or_else(|e| {
            panic!("moto_server must be installed for this test (./scripts/test.sh does): {program}: {e}")
        });
    let m = Moto {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    eventually(T, "moto_server to answer", || {
        let (code, _) = http("GET", &m.url, None, None);
        (code == 200).then_some(())
    });
    let (code, body) = http("PUT", &format!("{}/{BUCKET}", m.url), None, None);
    assert_eq!(code, 200, "create bucket: {body}");
    m
}

/// Keys of the bucket's objects under `prefix` (ListObjectsV2).
fn keys(m: &Moto, prefix: &str) -> Vec<String> {
    let (code, body) = http(
        "GET",
        &format!("{}/{BUCKET}?list-type=2&prefix={prefix}", m.url),
        None,
        None,
    );
    assert_eq!(code, 200, "{body}");
    body.split("<Key>")
        .skip(1)
        .filter_map(|s| s.split("</Key>").next())
        .map(str::to_string)
        .collect()
}

/// Submits a folder, waits, downloads its outputs; checks what came back.
fn folder_round_trip(env: &Env, tag: &str) -> String {
    let case = env.path().join(format!("case-{tag}"));
    std::fs::create_dir_all(case.join("data")).unwrap();
    std::fs::write(case.join("data/input.txt"), format!("hello {tag}\n")).unwrap();
    std::fs::write(
        case.join("run.sh"),
        "set -e\nmkdir -p out\ntr a-z A-Z < data/input.txt > out/result.txt\nhead -c 9000000 /dev/zero > out/big.bin\necho ran\n",
    )
    .unwrap();
    let id = env.ok(&[
        "submit",
        case.to_str().unwrap(),
        "--run",
        "run.sh",
        "--wait",
    ]);
    let id = id
        .split_whitespace()
        .find(|w| w.bytes().all(|b| b.is_ascii_digit()))
        .expect("a job id")
        .to_string();
    let j = wait_state(env, &id, "SUCCEEDED", T);
    assert_eq!(j["attempts_used"], 1);
    let to = env.path().join(format!("results-{tag}"));
    env.ok(&["outputs", &id, "--to", to.to_str().unwrap()]);
    let got = std::fs::read_to_string(to.join("out/result.txt")).unwrap();
    assert_eq!(got, format!("HELLO {}\n", tag.to_uppercase()));
    assert_eq!(
        std::fs::metadata(to.join("out/big.bin")).unwrap().len(),
        9_000_000
    );
    id
}

#[test]
fn folders_and_outputs_live_in_s3_with_credentials_from_the_environment() {
    let env = Env::new();
    let m = moto(env.path());
    for (k, v) in [
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL", m.url.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
    ] {
        env.set_var(k, v);
    }
    let (_up, _) = up(&env, &format!("objects = \"s3://{BUCKET}/env-prefix\"\n"));
    let id = folder_round_trip(&env, "env");
    let all = keys(&m, "env-prefix/");
    assert!(
        all.iter()
            .any(|k| k.starts_with("env-prefix/uploads/") && k.ends_with("/data/input.txt")),
        "the uploaded folder is in the bucket: {all:?}"
    );
    let out = format!("env-prefix/jobs/{id}/attempts/1/outputs/out/result.txt");
    assert!(all.contains(&out), "{out} in {all:?}");
    // Nothing was written to the local data directory's object folder.
    assert!(!env.path().join("data/objects/jobs").exists());
}

#[test]
fn s3_credentials_and_endpoint_from_the_config_file() {
    let env = Env::new();
    let m = moto(env.path());
    // No AWS_* variables: everything comes from [s3].
    for k in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT",
        "AWS_ALLOW_HTTP",
        "AWS_SESSION_TOKEN",
    ] {
        assert!(
            std::env::var(k).is_err(),
            "{k} must not be set for this test"
        );
    }
    let (_up, _) = up(
        &env,
        &format!(
            "objects = \"s3://{BUCKET}/cfg\"\n[s3]\nendpoint = \"{}\"\nregion = \"us-east-1\"\n\
             access_key_id = \"cfg-key\"\nsecret_access_key = \"cfg-secret\"\nallow_http = true\n",
            m.url
        ),
    );
    let id = folder_round_trip(&env, "cfg");
    let all = keys(&m, "cfg/");
    assert!(
        all.contains(&format!("cfg/jobs/{id}/attempts/1/outputs/out/big.bin")),
        "{all:?}"
    );
    // A config that names S3 options for a local directory is refused.
    let bad = Env::new();
    let cfg = bad.write_config("[s3]\nregion = \"x\"\n");
    let out = bad.run(&["server", "--config", cfg.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("s3"), "{err}");
}

#[test]
fn studies_live_in_s3_under_their_prefix() {
    let env = Env::new();
    let m = moto(env.path());
    for (k, v) in [
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL", m.url.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
    ] {
        env.set_var(k, v);
    }
    let (_up, _) = up(&env, &format!("objects = \"s3://{BUCKET}/st\"\n"));
    let data = env.path().join("set");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("small.txt"), "small\n").unwrap();
    // Larger than one request: sent in parts and joined in S3.
    let big: Vec<u8> = (0..(40u32 << 20)).map(|i| (i % 251) as u8).collect();
    std::fs::write(data.join("big.bin"), &big).unwrap();
    env.ok(&["study", "create", "on-s3"]);
    let v = env.json(&["study", "upload", "on-s3", data.to_str().unwrap(), "--json"]);
    assert_eq!(v["files"], 2, "{v}");
    let all = keys(&m, "st/studies/");
    assert_eq!(
        all.iter().filter(|k| k.contains("/objects/")).count(),
        2,
        "two objects: {all:?}"
    );
    assert!(
        all.iter().all(|k| k.starts_with("st/studies/1/objects/")),
        "everything under the study's prefix, the parts removed: {all:?}"
    );
    let back = env.path().join("back");
    env.ok(&["study", "download", "on-s3", "--to", back.to_str().unwrap()]);
    assert_eq!(std::fs::read(back.join("big.bin")).unwrap(), big);
    // A job reads it.
    let id = env.ok(&[
        "submit",
        "--study",
        "on-s3",
        "--",
        "sh",
        "-c",
        "cat \"$TRESTLE_STUDY_ON_S3/small.txt\"",
    ]);
    let id = id.trim().to_string();
    wait_state(&env, &id, "SUCCEEDED", T);
    assert!(env.ok(&["logs", &id]).contains("small"));
}
