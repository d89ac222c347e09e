//! Writes `fixtures/vN-sqlite.sql`, `vN-postgres.sql` and `vN.json` for
//! the current schema version N (see `tests/upgrade.rs`):
//!
//! ```sh
//! cargo run -p trestle-store-conformance --example generate_fixtures
//! ```
//!
//! Needs PostgreSQL (`TRESTLE_TEST_POSTGRES`) and the `sqlite3` and
//! `pg_dump` command-line tools. Fixtures of a released schema are never
//! made again: it refuses to overwrite one.

use std::collections::BTreeMap;
use std::error::Error;
use trestle_store_conformance::db::{Backend, TestDb};
use trestle_store_conformance::fixtures::{
    Manifest, backend_name, fixtures_dir, populate, schema_version,
};

type Res<T> = Result<T, Box<dyn Error>>;

fn run(cmd: &mut std::process::Command) -> Res<String> {
    let out = cmd.output()?;
    if !out.status.success() {
        return Err(format!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(String::from_utf8(out.stdout)?)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Res<()> {
    let mut manifest: Option<Manifest> = None;
    let mut files = Vec::new();
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let db = TestDb::new(backend, "fixture").await;
        let mut m = populate(&db.store).await;
        db.store.close().await;
        m.version = schema_version(db.url()).await;
        let name = backend_name(backend);
        let dump = match backend {
            Backend::Sqlite => {
                let path = db.url().trim_start_matches("sqlite://").to_string();
                run(std::process::Command::new("sqlite3")
                    .arg(&path)
                    .arg(".dump"))?
            }
            Backend::Postgres => run(std::process::Command::new("pg_dump")
                .args([
                    "--inserts",
                    "--no-owner",
                    "--no-privileges",
                    "--no-comments",
                ])
                .arg(db.url()))?,
        };
        // Plain SQL only: newer pg_dump brackets its output in psql
        // meta-commands (`\restrict`).
        let dump: String = dump
            .lines()
            .filter(|l| !l.starts_with('\\'))
            .map(|l| format!("{l}\n"))
            .collect();
        files.push((
            fixtures_dir().join(format!("v{}-{name}.sql", m.version)),
            dump,
        ));
        let leases = m
            .leases
            .remove("")
            .ok_or("the fixture recorded no leases")?;
        match &mut manifest {
            None => {
                m.leases.insert(name.into(), leases);
                manifest = Some(m);
            }
            Some(first) => {
                let mut other = first.clone();
                other.leases = BTreeMap::new();
                if other != m {
                    return Err("the two databases do not hold the same fixture".into());
                }
                first.leases.insert(name.into(), leases);
            }
        }
        db.finish().await;
    }
    let m = manifest.ok_or("no database was filled")?;
    let json = serde_json::to_string_pretty(&m)? + "\n";
    files.push((fixtures_dir().join(format!("v{}.json", m.version)), json));
    for (file, _) in &files {
        if file.exists() {
            return Err(format!(
                "{} exists: fixtures of a released schema are never made again \
                 (delete them by hand only if they were never committed)",
                file.display()
            )
            .into());
        }
    }
    for (file, text) in files {
        std::fs::write(&file, text)?;
        println!("wrote {}", file.display());
    }
    Ok(())
}
