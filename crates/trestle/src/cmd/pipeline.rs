//! `trestle submit --pipeline pipeline.toml`: named steps with commands,
//! inputs and `after` lists. Each step's `inputs` folder (relative to the
//! pipeline file) is uploaded first; the server stages the outputs of a
//! step's predecessors into its scratch directory.
//!
//! ```toml
//! name = "cfd"
//! [[steps]]
//! name = "mesh"
//! command = "./mesh.sh"
//! inputs = "case"          # a folder next to this file
//! [[steps]]
//! name = "solve"
//! command = "./solve.sh"
//! after = ["mesh"]
//! cpus = 4
//! ```

use super::upload::upload_folder;
use crate::output::usage;
use anyhow::{Context, Result};
use serde_json::Value;
use std::path::Path;
use std::process::ExitCode;
use trestle_client::Client;

/// Reads a pipeline file as JSON for the API (TOML; `.json` files too).
pub fn read(path: &Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let value: Value = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON", path.display()))?
    } else {
        let t: toml::Value = toml::from_str(&text)
            .with_context(|| format!("{} is not valid TOML", path.display()))?;
        serde_json::to_value(t)?
    };
    if !value.is_object() {
        return usage(format!("{} must describe one pipeline", path.display()));
    }
    Ok(value)
}

/// Uploads every step's `inputs` folder and submits the pipeline.
pub async fn submit(c: &Client, path: &Path, wait: bool, json: bool) -> Result<ExitCode> {
    let mut value = read(path)?;
    let base = path.parent().unwrap_or(Path::new("."));
    let steps = value.get_mut("steps").and_then(Value::as_array_mut);
    if let Some(steps) = steps {
        for step in steps.iter_mut() {
            let Some(dir) = step
                .get("inputs")
                .and_then(Value::as_str)
                .map(str::to_string)
            else {
                continue;
            };
            let folder = base.join(&dir);
            if !folder.is_dir() {
                return usage(format!(
                    "step inputs `{dir}`: {} is not a folder",
                    folder.display()
                ));
            }
            let upload = upload_folder(c, &folder).await?;
            step["inputs"] = Value::String(upload);
        }
    }
    let view = c.submit_pipeline(&value).await?;
    if json && !wait {
        println!("{}", serde_json::to_string_pretty(&view)?);
    } else if !wait {
        println!("{}", view.id);
    }
    if wait {
        if !json {
            eprintln!("submitted pipeline {}", view.id);
        }
        return super::jobs::wait_ids(c, &[view.id], json).await;
    }
    Ok(ExitCode::SUCCESS)
}
