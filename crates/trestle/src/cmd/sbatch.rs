//! `trestle sbatch [OPTIONS] SCRIPT [ARGS...]`: submits an unmodified
//! Slurm batch script. `#SBATCH` directives and the same options on the
//! command line (which win) become the job; the script is uploaded and
//! runs with the `SLURM_*` variables scripts read. Prints `Submitted batch
//! job <id>` (or just the id with `--parsable`) like Slurm. `--mail-type`
//! subscribes the owner to the job's events (delivered like any other
//! notification, to their address).

use super::client;
use crate::Conn;
use crate::output::{UsageError, usage};
use anyhow::{Context, Result};
use clap::Args;
use std::path::Path;
use std::process::ExitCode;
use trestle_core::batch::sbatch::{SbatchOptions, SubmitContext};

/// `trestle sbatch` arguments: sbatch options, the script, its arguments.
#[derive(Args, Debug)]
pub struct SbatchArgs {
    /// sbatch options (-J, -a, -c, --mem, -t, -o, -e, -d, --gres, -D,
    /// --export, -p, -n, -N, --parsable, -W), then the script and its
    /// arguments.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        required = true,
        value_name = "OPTIONS... SCRIPT ARGS"
    )]
    pub args: Vec<String>,
}

fn invalid(e: trestle_core::ValidationError) -> anyhow::Error {
    let field = e.field.map(|f| format!("{f}: ")).unwrap_or_default();
    UsageError(format!("{field}{}", e.message)).into()
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// Where the script to upload is: the user's file, or a `--wrap` script
/// in a temporary folder (removed when this is dropped).
enum Scratch {
    Given(std::path::PathBuf),
    Temp {
        _dir: tempfile::TempDir,
        path: std::path::PathBuf,
    },
}

impl Scratch {
    fn path(&self) -> &Path {
        match self {
            Scratch::Given(path) | Scratch::Temp { path, .. } => path,
        }
    }
}

/// Runs `trestle sbatch`.
pub async fn run(a: SbatchArgs, conn: &Conn) -> Result<ExitCode> {
    let mut cli = SbatchOptions::default();
    let at = cli.parse_words(&a.args).map_err(invalid)?;
    // `--wrap CMD` is the whole script; otherwise the first word after the
    // options names the script file.
    let (name, path, text, script_args) = match (&cli.wrap, a.args.get(at)) {
        (Some(_), Some(extra)) => {
            return usage(format!(
                "give either --wrap COMMAND or a script, not both (`{extra}` follows the options)"
            ));
        }
        (Some(cmd), None) => {
            let text = SbatchOptions::wrap_script(cmd);
            let dir = tempfile::tempdir().context("cannot create a temporary folder")?;
            let path = dir.path().join("wrap");
            std::fs::write(&path, &text).context("cannot write the --wrap script")?;
            (
                "wrap".to_string(),
                Scratch::Temp { _dir: dir, path },
                text,
                Vec::new(),
            )
        }
        // No script named: read it from standard input, as Slurm does.
        (None, None) if !std::io::IsTerminal::is_terminal(&std::io::stdin()) => {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                .context("cannot read the batch script from standard input")?;
            if text.trim().is_empty() {
                return usage("no batch script: standard input was empty");
            }
            let dir = tempfile::tempdir().context("cannot create a temporary folder")?;
            let path = dir.path().join("sbatch");
            std::fs::write(&path, &text).context("cannot keep the batch script")?;
            (
                "sbatch".to_string(),
                Scratch::Temp { _dir: dir, path },
                text,
                Vec::new(),
            )
        }
        (None, None) => {
            return usage(
                "usage: trestle sbatch [OPTIONS] SCRIPT [ARGS...], trestle sbatch [OPTIONS] --wrap COMMAND, or the script on standard input",
            );
        }
        (None, Some(script)) => {
            let path = Path::new(script);
            if !path.is_file() {
                return usage(format!(
                    "the batch script `{script}` {}",
                    if path.exists() {
                        "is not a file"
                    } else {
                        "does not exist"
                    }
                ));
            }
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the batch script {script}"))?;
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                return usage(format!("`{script}` is not a file name"));
            };
            (
                name.to_string(),
                Scratch::Given(path.to_path_buf()),
                text,
                a.args[at + 1..].to_vec(),
            )
        }
    };
    let directives = SbatchOptions::from_script(&text).map_err(invalid)?;
    let opts = cli.over(directives);
    for w in &opts.warnings {
        eprintln!("trestle sbatch: warning: {w}");
    }
    let submit_dir = std::env::current_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    let ctx = SubmitContext {
        script_name: name.clone(),
        args: script_args,
        submit_dir,
        submit_host: host(),
        user: std::env::var("USER").unwrap_or_default(),
        env: std::env::vars().collect(),
    };
    let mail = match &opts.mail_type {
        Some(t) => Some(trestle_core::notify::rule::slurm_mail_events(t).map_err(invalid)?),
        None => None,
    };
    let mut req = opts.to_request(&ctx).map_err(invalid)?;
    // Check everything before uploading anything.
    req.clone().validate().map_err(invalid)?;
    let c = client(conn)?;
    // A small script travels in the spec (one request, as fast as sbatch
    // should be); a larger one is uploaded as the job's inputs.
    if text.len() <= trestle_core::batch::workflow::INLINE_SCRIPT_MAX
        && let Some(sl) = req.slurm.as_mut()
    {
        sl.script = Some(trestle_core::batch::workflow::InlineScript {
            name: name.clone(),
            text: text.clone(),
        });
    } else {
        let upload = c.create_upload().await?.id;
        c.upload_file(&upload, &name, path.path(), None)
            .await
            .with_context(|| format!("uploading {name}"))?;
        req.inputs = Some(upload);
    }
    let view = c.submit_job(&serde_json::to_value(&req)?).await?;
    if opts.parsable {
        println!("{}", view.id);
    } else {
        println!("Submitted batch job {}", view.id);
    }
    if let Some((events, warnings)) = mail {
        for w in warnings {
            eprintln!("trestle sbatch: warning: {w}");
        }
        if opts.mail_user.is_some() {
            eprintln!(
                "trestle sbatch: warning: --mail-user: notifications go to your Trestle address \
                 (see `trestle notify subscriptions`)"
            );
        }
        if !events.is_empty() {
            let spec = trestle_core::notify::rule::SubscriptionSpec {
                events,
                target: None,
                job: Some(view.id),
            };
            let r: Result<serde_json::Value, _> = c
                .call(
                    trestle_client::Method::POST,
                    &["notify", "subscriptions"],
                    &[],
                    Some(&spec),
                )
                .await;
            if let Err(e) = r {
                eprintln!(
                    "trestle sbatch: warning: --mail-type: cannot subscribe to job {}: {e}",
                    view.id
                );
            }
        }
    }
    if opts.wait {
        return super::jobs::wait_ids(&c, &[view.id], false).await;
    }
    Ok(ExitCode::SUCCESS)
}
