//! Job references as users type them (`12`, or `12_3` for the child with
//! index 3 of array 12), and what the CLI says about an array's parent
//! where a single job was expected.

use crate::output::usage;
use anyhow::Result;
use trestle_client::{Client, JobQuery};
use trestle_core::JobState;
use trestle_core::api::JobView;
use trestle_core::batch::array::compress;
use trestle_core::batch::workflow::JobKind;

/// A job as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobRef {
    /// A job id.
    Id(i64),
    /// The child with `index` of array `parent`.
    Child {
        /// The array's id.
        parent: i64,
        /// The child's index.
        index: u32,
    },
}

/// Parses `12` or `12_3`.
pub fn parse(text: &str) -> Result<JobRef> {
    let bad = || {
        usage::<JobRef>(format!(
            "`{text}` is not a job id (12, or 12_3 for the child with index 3 of array 12)"
        ))
    };
    match text.trim().split_once('_') {
        None => match text.trim().parse::<i64>() {
            Ok(n) if n > 0 => Ok(JobRef::Id(n)),
            _ => bad(),
        },
        Some((p, i)) => match (p.parse::<i64>(), i.parse::<u32>()) {
            (Ok(parent), Ok(index)) if parent > 0 => Ok(JobRef::Child { parent, index }),
            _ => bad(),
        },
    }
}

/// Resolves a job reference to a job id: an array child by its parent
/// and index (one indexed lookup), with a message that says why when the
/// child does not exist.
pub async fn resolve(c: &Client, text: &str) -> Result<i64> {
    let (parent, index) = match parse(text)? {
        JobRef::Id(id) => return Ok(id),
        JobRef::Child { parent, index } => (parent, index),
    };
    let page = c
        .list_jobs(&JobQuery {
            parent: Some(parent),
            index: Some(index),
            limit: Some(1),
            ..Default::default()
        })
        .await?;
    if let Some(j) = page.jobs.first() {
        return Ok(j.id);
    }
    let p = c.get_job(parent).await?;
    let Some(array) = p
        .spec
        .flow
        .array
        .as_ref()
        .filter(|_| p.flow.kind == JobKind::Array)
    else {
        return usage(format!(
            "job {parent} is not an array, so `{text}` names nothing; use `{parent}`"
        ));
    };
    if !array.contains(index) {
        let all = array.to_string();
        let indices = all.split('%').next().unwrap_or(&all);
        return usage(format!(
            "array {parent} has no index {index}: its indices are {indices}"
        ));
    }
    if p.state.is_terminal() {
        return usage(format!(
            "array {parent} ended ({}) before its child with index {index} was created",
            p.state
        ));
    }
    usage(format!(
        "array {parent} has not created its child with index {index} yet (children are created as earlier ones finish; `trestle cancel {parent}` cancels the whole array)"
    ))
}

/// Resolves several references in order.
pub async fn resolve_all(c: &Client, texts: &[String]) -> Result<Vec<i64>> {
    let mut ids = Vec::with_capacity(texts.len());
    for t in texts {
        ids.push(resolve(c, t).await?);
    }
    Ok(ids)
}

/// The indices of an array's children in `state`, every page of them.
pub async fn child_indices(c: &Client, parent: i64, state: JobState) -> Result<Vec<u32>> {
    let mut out = Vec::new();
    let mut before = None;
    loop {
        let page = c
            .list_jobs(&JobQuery {
                parent: Some(parent),
                states: vec![state],
                before,
                limit: Some(1000),
                ..Default::default()
            })
            .await?;
        out.extend(page.jobs.iter().filter_map(|j| j.flow.array_index));
        match page.next_before {
            Some(b) => before = Some(b),
            None => break,
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// What an array or pipeline is, for a command that wanted one job
/// (`logs`, `outputs`): its children per state, the failed indices as a
/// compressed range, and where to look next.
pub async fn group_summary(c: &Client, j: &JobView, wanted: &str) -> Result<String> {
    let what = match j.flow.kind {
        JobKind::Array => "an array",
        JobKind::Pipeline => "a pipeline",
        JobKind::Job => return Ok(String::new()),
    };
    let mut s = format!(
        "job {} is {what}: it has no {wanted} of its own; its children do.\n",
        j.id
    );
    if let Some(counts) = &j.flow.children {
        let per: Vec<String> = counts
            .counts
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(st, n)| format!("{n} {st}"))
            .collect();
        s.push_str(&format!(
            "children: {} in all ({})\n",
            counts.total,
            per.join(", ")
        ));
    }
    if j.flow.kind == JobKind::Array {
        let failed = child_indices(c, j.id, JobState::Failed).await?;
        let example = failed
            .first()
            .copied()
            .or_else(|| j.spec.flow.array.as_ref().map(|a| a.min()))
            .unwrap_or(0);
        if !failed.is_empty() {
            s.push_str(&format!("failed indices: {}\n", compress(&failed)));
        }
        s.push_str(&format!(
            "one child: trestle {wanted_cmd} {}_{example}",
            j.id,
            wanted_cmd = if wanted == "log" { "logs" } else { "outputs" }
        ));
        if wanted != "log" {
            s.push_str(" --to DIR");
        }
        s.push_str(&format!("; all of them: trestle jobs --array {}", j.id));
        if !failed.is_empty() {
            s.push_str(&format!(
                "; run the failed ones again: trestle resubmit {} --failed",
                j.id
            ));
        }
    } else {
        s.push_str(&format!(
            "its steps: trestle job show {}; all of them: trestle jobs --array {}",
            j.id, j.id
        ));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ids_and_children() {
        assert_eq!(parse("12").unwrap(), JobRef::Id(12));
        assert_eq!(
            parse("1013_17").unwrap(),
            JobRef::Child {
                parent: 1013,
                index: 17
            }
        );
        for bad in ["", "0", "-3", "12_", "_3", "12_x", "1.5", "12_3_4"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
