//! The README runs as written: every `sh` block of README.md is marked
//! `<!-- readme-test: run -->` or `<!-- readme-test: skip (why) -->`, and
//! the runnable ones (with those of `docs/*.md` marked runnable) run top
//! to bottom, each as one `sh -e` script, against a fresh `trestle up`
//! with the binary on PATH, from a copy of `examples/`. A command that
//! fails fails the test with the block's trace; key outputs are checked.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One fenced `sh` block and what its marker says.
#[derive(Debug)]
struct Block {
    file: String,
    line: usize,
    run: bool,
    code: String,
}

/// The `sh` blocks of a Markdown text; `required` makes an unmarked block
/// an error (the README), otherwise unmarked blocks are not run (docs).
fn blocks(file: &str, text: &str, required: bool) -> Vec<Block> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() != "```sh" {
            i += 1;
            continue;
        }
        let marker = lines[..i]
            .iter()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(|l| l.trim())
            .unwrap_or("");
        let run = marker.starts_with("<!-- readme-test: run");
        let skip = marker.starts_with("<!-- readme-test: skip (");
        assert!(
            run || skip || !required,
            "{file}:{}: a `sh` block needs `<!-- readme-test: run -->` or `<!-- readme-test: skip (why) -->` above it",
            i + 1
        );
        let start = i + 1;
        let mut j = start;
        while j < lines.len() && lines[j].trim() != "```" {
            j += 1;
        }
        out.push(Block {
            file: file.to_string(),
            line: start,
            run,
            code: lines[start..j].join("\n"),
        });
        i = j + 1;
    }
    out
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

/// A shell with the test's environment and the binary first on PATH.
fn shell(env: &Env) -> Command {
    let base = env.cmd();
    let mut sh = Command::new("sh");
    sh.current_dir(env.path());
    for (k, v) in base.get_envs() {
        match v {
            Some(v) => sh.env(k, v),
            None => sh.env_remove(k),
        };
    }
    let bin_dir = Path::new(bin()).parent().unwrap().to_path_buf();
    let path = std::env::var("PATH").unwrap_or_default();
    sh.env("PATH", format!("{}:{path}", bin_dir.display()));
    sh
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_readme_runs_as_written() {
    let root = repo();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let mut all = blocks("README.md", &readme, true);
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    for d in docs {
        let text = std::fs::read_to_string(&d).unwrap();
        let name = format!("docs/{}", d.file_name().unwrap().to_string_lossy());
        all.extend(blocks(&name, &text, false));
    }
    let runnable: Vec<&Block> = all.iter().filter(|b| b.run).collect();
    assert!(
        runnable.len() >= 4,
        "the README's runnable blocks went missing: {all:?}"
    );
    let env = Env::new();
    let (_up, _) = up(&env, "");
    copy_dir(&root.join("examples"), &env.path().join("examples"));
    let mut transcript = String::new();
    for b in runnable {
        let out = shell(&env)
            .args(["-e", "-x", "-c", &b.code])
            .output()
            .expect("run sh");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{}:{}: the block failed ({:?}); the last traced command is the one:\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
            b.file,
            b.line,
            out.status.code()
        );
        transcript.push_str(&stdout);
        transcript.push_str(&stderr);
    }
    // Key outputs, as the README's comments promise them.
    for want in [
        "hello\n",                        // trestle logs 1
        "DONE",                           // logs -f 2: the simulation's success string
        "2 already finished (SUCCEEDED)", // cancel 2
        "task 7: 49",                     // logs ${sweep}_7
        "Submitted batch job",            // sbatch job.sh
        "steps:",                         // job show of the pipeline
        "simulate",
    ] {
        assert!(
            transcript.contains(want),
            "`{want}` is not in the README's output:\n{transcript}"
        );
    }
    // The files `outputs 3 --to results/` wrote.
    let words = std::fs::read_to_string(env.path().join("examples/results/words.txt"))
        .expect("outputs 3 wrote results/words.txt");
    assert_eq!(words.trim(), "9");
}

#[test]
fn unmarked_blocks_are_found() {
    let text = "intro\n\n<!-- readme-test: run -->\n```sh\necho a\n```\n\n```sh\necho b\n```\n";
    let b = blocks("x.md", text, false);
    assert_eq!(b.len(), 2);
    assert!(b[0].run && !b[1].run);
    assert_eq!(b[0].code, "echo a");
    let r = std::panic::catch_unwind(|| blocks("x.md", text, true));
    assert!(r.is_err(), "an unmarked block in the README is an error");
}
