//! The OpenAPI document against the server it describes, with a
//! property-based fuzzer (schemathesis, installed by `scripts/test.sh`):
//! requests generated from the document's schemas never get a 5xx, and
//! every answer has a documented status, content type and schema. Seeded,
//! so a failure reproduces.

mod common;

use common::*;
use std::process::Command;

fn fuzzer() -> String {
    if let Ok(p) = std::env::var("TRESTLE_TEST_SCHEMATHESIS") {
        return p;
    }
    let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/../../.venv-test/bin/st");
    if std::path::Path::new(venv).exists() {
        return venv.to_string();
    }
    "st".to_string()
}

#[test]
fn generated_requests_get_documented_answers_and_no_server_error() {
    let env = Env::new();
    let (_up, admin) = up(&env, "");
    let admin = admin.expect("admin token");
    let program = fuzzer();
    let out = Command::new(&program)
        .args([
            "run",
            &format!("{}/api/v1/openapi.json", env.url()),
            "-H",
            &format!("Authorization: Bearer {admin}"),
            "-n",
            "10",
            "--phases",
            "fuzzing",
            "-c",
            "not_a_server_error,response_schema_conformance,content_type_conformance,status_code_conformance",
            // The event stream never ends; the lease long-polls.
            "--exclude-path",
            "/api/v1/events",
            "--exclude-path",
            "/api/v1/workers/{id}/lease",
            "--seed",
            "1",
        ])
        .env("NO_COLOR", "1")
        // Its cache goes in the test's own directory, not the checkout.
        .current_dir(env.path())
        .output()
        .unwrap_or_else(|e| {
            panic!("schemathesis must be installed for this test (./scripts/test.sh does): {program}: {e}")
        });
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the fuzzer found problems:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Tested: "), "it ran: {text}");
}
