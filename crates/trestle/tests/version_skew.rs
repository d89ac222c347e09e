//! Version skew (docs/operations.md): a worker one minor version behind
//! the server keeps working; any other version is told to drain and exit
//! (`409 upgrade-required`) when it registers, without failing anything.

mod common;

use common::*;

fn register(base: &str, token: &str, version: &str) -> (u16, String) {
    let body = format!(
        r#"{{"host":"h","pid":1,"capacity":{{"cpus":1,"mem_mib":512,"gpus":0}},"version":"{version}"}}"#
    );
    http(
        "POST",
        &format!("{base}/api/v1/workers"),
        Some(token),
        Some(&body),
    )
}

#[test]
fn workers_one_minor_version_behind_work_and_others_are_told_to_upgrade() {
    let env = Env::new();
    let (_up, _) = up(&env, "");
    let base = env.url();
    let w = env.json(&["token", "create", "--worker", "--json"]);
    let token = w["token"].as_str().unwrap().to_string();
    let own = env!("CARGO_PKG_VERSION");
    let mut parts = own.split('.').map(|p| p.parse::<u64>().unwrap());
    let (major, minor) = (parts.next().unwrap(), parts.next().unwrap());
    let older = if minor > 0 {
        format!("{major}.{}.7", minor - 1)
    } else {
        format!("{major}.{minor}.0")
    };
    let newer = format!("{major}.{}.0", minor + 1);
    let too_old = format!("{}.0.0", major.saturating_sub(1));

    let (code, body) = register(&base, &token, own);
    assert_eq!(code, 201, "{body}");
    let (code, body) = register(&base, &token, &older);
    assert_eq!(code, 201, "one minor version behind works: {body}");
    let id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, body) = http(
        "POST",
        &format!("{base}/api/v1/workers/{id}/lease"),
        Some(&token),
        Some(r#"{"free":{"cpus":1,"mem_mib":512,"gpus":0},"max_jobs":1}"#),
    );
    assert_eq!(code, 200, "an older worker leases as it always did: {body}");

    for v in [newer.as_str(), "t", ""] {
        let (code, body) = register(&base, &token, v);
        assert_eq!(code, 409, "{v}: {body}");
        assert!(body.contains("\"code\":\"upgrade-required\""), "{body}");
    }
    if major > 0 {
        let (code, body) = register(&base, &token, &too_old);
        assert_eq!(code, 409, "{body}");
        assert!(body.contains("too old"), "{body}");
    }
}
