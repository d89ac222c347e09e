//! Pipelines: named steps with commands, inputs and dependencies on other
//! steps (`trestle submit --pipeline pipeline.toml`), validated into job
//! specs in an order where every step comes after the steps it needs, and
//! the small text graph `trestle job show` prints.

use crate::api::workflow::StepView;
use crate::batch::job::{Command, JobSpec};
use crate::batch::spec::{CommandRequest, DEFAULT_QUEUE, JobRequest};
use crate::error::{Result, ValidationError};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Most steps in one pipeline.
pub const MAX_STEPS: usize = 200;

/// A pipeline as submitted (`POST /api/v1/pipelines`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineRequest {
    /// Display name (default `pipeline`).
    #[serde(default)]
    pub name: Option<String>,
    /// Default queue of the steps.
    #[serde(default)]
    pub queue: Option<String>,
    /// The steps (TOML: `[[steps]]`).
    #[serde(default, alias = "step")]
    pub steps: Vec<StepRequest>,
}

/// One step: a job with a name and the steps it runs after. Every field
/// of a job request (command, inputs, resources, array, ...) is a step's
/// field too, with the same names and validation; `name` and `after` are
/// the step's own (a step's dependencies are other steps, by name).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StepRequest {
    /// Unique step name.
    pub name: String,
    /// Names of steps that must succeed first; their outputs are staged
    /// into this step's scratch directory.
    #[serde(default)]
    pub after: Vec<String>,
    /// The step's job (its queue defaults to the pipeline's).
    #[serde(flatten)]
    pub job: JobRequest,
}

impl<'de> Deserialize<'de> for StepRequest {
    /// The step's own fields, then the rest as a job request, which
    /// refuses unknown fields (serde's `flatten` would accept them).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error;
        let mut map = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
        let name = match map.remove("name") {
            Some(serde_json::Value::String(n)) => n,
            Some(_) => return Err(D::Error::custom("`name` must be a string")),
            None => return Err(D::Error::missing_field("name")),
        };
        let after = match map.remove("after") {
            Some(v) => serde_json::from_value(v).map_err(D::Error::custom)?,
            None => Vec::new(),
        };
        let job =
            serde_json::from_value(serde_json::Value::Object(map)).map_err(D::Error::custom)?;
        Ok(StepRequest { name, after, job })
    }
}

/// A validated step: its spec and the positions of the steps it needs
/// (always earlier in [`ValidPipeline::steps`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ValidStep {
    /// The step's job.
    pub spec: JobSpec,
    /// Positions of the steps it runs after.
    pub after: Vec<usize>,
}

/// A validated pipeline, steps in dependency order.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidPipeline {
    /// The parent job (never runs; its state summarises the steps).
    pub parent: JobSpec,
    /// The steps.
    pub steps: Vec<ValidStep>,
}

fn err(field: &str, msg: String) -> ValidationError {
    ValidationError::new("invalid-pipeline", field, msg)
}

impl PipelineRequest {
    /// Validates names, references and acyclicity, and every step's job.
    pub fn validate(self) -> Result<ValidPipeline> {
        if self.steps.is_empty() || self.steps.len() > MAX_STEPS {
            return Err(err(
                "steps",
                format!(
                    "a pipeline has 1 to {MAX_STEPS} steps, got {}",
                    self.steps.len()
                ),
            ));
        }
        let mut index: HashMap<&str, usize> = HashMap::new();
        for (i, s) in self.steps.iter().enumerate() {
            let ok = !s.name.is_empty()
                && s.name.len() <= 64
                && s.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !ok {
                return Err(err(
                    &format!("steps[{i}].name"),
                    format!(
                        "step name `{}` must be 1-64 letters, digits, `-` or `_`",
                        s.name.escape_debug()
                    ),
                ));
            }
            if index.insert(s.name.as_str(), i).is_some() {
                return Err(err(
                    &format!("steps[{i}].name"),
                    format!("step `{}` is defined twice", s.name),
                ));
            }
        }
        let mut needs: Vec<Vec<usize>> = Vec::with_capacity(self.steps.len());
        for (i, s) in self.steps.iter().enumerate() {
            let mut v = Vec::new();
            for a in &s.after {
                match index.get(a.as_str()) {
                    Some(&j) if j == i => {
                        return Err(err(
                            &format!("steps[{i}].after"),
                            format!("step `{a}` cannot run after itself"),
                        ));
                    }
                    Some(&j) => v.push(j),
                    None => {
                        return Err(err(
                            &format!("steps[{i}].after"),
                            format!("step `{}` runs after `{a}`, which is not a step", s.name),
                        ));
                    }
                }
            }
            v.sort_unstable();
            v.dedup();
            needs.push(v);
        }
        let order = topological(&needs)
            .ok_or_else(|| err("steps", "the steps' `after` lists form a cycle".to_string()))?;
        let queue = self.queue.clone();
        let mut position = vec![0usize; self.steps.len()];
        for (pos, &i) in order.iter().enumerate() {
            position[i] = pos;
        }
        let mut steps_by_index: Vec<Option<StepRequest>> =
            self.steps.into_iter().map(Some).collect();
        let mut steps = Vec::with_capacity(order.len());
        for &i in &order {
            let Some(s) = steps_by_index[i].take() else {
                continue;
            };
            let field = format!("steps[{i}]");
            let mut req = s.job;
            if !req.after.is_empty() || req.key.is_some() {
                return Err(err(
                    &field,
                    "a step waits for other steps with `after = [\"step\"]` and has no key".into(),
                ));
            }
            req.name = Some(s.name);
            req.queue = req.queue.or_else(|| queue.clone());
            let spec = req.validate().map_err(|mut e| {
                e.field = Some(match e.field {
                    Some(f) => format!("{field}.{f}"),
                    None => field.clone(),
                });
                e
            })?;
            let mut after: Vec<usize> = needs[i].iter().map(|&j| position[j]).collect();
            after.sort_unstable();
            steps.push(ValidStep { spec, after });
        }
        let name = self.name.unwrap_or_else(|| "pipeline".to_string());
        let parent = JobRequest {
            name: Some(name),
            queue: queue.or_else(|| Some(DEFAULT_QUEUE.to_string())),
            command: Some(CommandRequest::Script(format!(
                "# pipeline: {}",
                steps
                    .iter()
                    .map(|s| s.spec.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
            ..JobRequest::default()
        }
        .validate()?;
        Ok(ValidPipeline { parent, steps })
    }
}

/// Kahn's algorithm; `None` when there is a cycle. Ties keep file order.
fn topological(needs: &[Vec<usize>]) -> Option<Vec<usize>> {
    let n = needs.len();
    let mut done = vec![false; n];
    let mut order = Vec::with_capacity(n);
    while order.len() < n {
        let next = (0..n).find(|&i| !done[i] && needs[i].iter().all(|&j| done[j]))?;
        done[next] = true;
        order.push(next);
    }
    Some(order)
}

/// A small text graph of a pipeline's steps for `trestle job show`: one
/// line per step with its state and the steps it waits for, and the
/// chain on one line when the pipeline is a straight line.
pub fn render_graph(steps: &[StepView]) -> String {
    let names: HashMap<i64, &str> = steps.iter().map(|s| (s.id, s.name.as_str())).collect();
    let width = steps.iter().map(|s| s.name.len()).max().unwrap_or(4);
    let mut out = String::new();
    let linear = steps.iter().enumerate().all(|(i, s)| {
        if i == 0 {
            s.after.is_empty()
        } else {
            s.after == [steps[i - 1].id]
        }
    });
    if linear && steps.len() > 1 {
        let chain: Vec<String> = steps
            .iter()
            .map(|s| format!("{} ({})", s.name, s.state))
            .collect();
        out.push_str(&chain.join(" -> "));
        out.push('\n');
        return out;
    }
    for s in steps {
        let deps: Vec<&str> = s
            .after
            .iter()
            .map(|id| names.get(id).copied().unwrap_or("?"))
            .collect();
        let arrow = if deps.is_empty() {
            String::new()
        } else {
            format!("  <- {}", deps.join(", "))
        };
        out.push_str(&format!(
            "{:<width$}  #{:<6} {:<10}{arrow}\n",
            s.name,
            s.id,
            s.state.as_str()
        ));
    }
    out
}

/// The command of a step as text (for listings).
pub fn command_text(c: &Command) -> String {
    match c {
        Command::Argv(v) => v.join(" "),
        Command::Shell(s) => s.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::job::JobState;

    fn req(text: &str) -> PipelineRequest {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn orders_steps_by_dependency() {
        let p = req(r#"{"name":"cfd","steps":[
                {"name":"post","command":"./post.sh","after":["sim","mesh"]},
                {"name":"pre","command":"./pre.sh","cpus":2},
                {"name":"sim","command":"./sim.sh","after":["mesh"]},
                {"name":"mesh","command":"./mesh.sh","after":["pre"]}
            ]}"#)
        .validate()
        .unwrap();
        let names: Vec<&str> = p.steps.iter().map(|s| s.spec.name.as_str()).collect();
        assert_eq!(names, vec!["pre", "mesh", "sim", "post"]);
        assert_eq!(p.steps[0].after, Vec::<usize>::new());
        assert_eq!(p.steps[1].after, vec![0]);
        assert_eq!(p.steps[3].after, vec![1, 2]);
        assert_eq!(p.steps[0].spec.resources.cpus, 2);
        assert_eq!(p.parent.name, "cfd");
    }

    #[test]
    fn errors_name_the_step() {
        let cases = [
            (r#"{"steps":[]}"#, "steps"),
            (
                r#"{"steps":[{"name":"a","command":"x"},{"name":"a","command":"y"}]}"#,
                "steps[1].name",
            ),
            (
                r#"{"steps":[{"name":"a b","command":"x"}]}"#,
                "steps[0].name",
            ),
            (
                r#"{"steps":[{"name":"a","command":"x","after":["zz"]}]}"#,
                "steps[0].after",
            ),
            (
                r#"{"steps":[{"name":"a","command":"x","after":["a"]}]}"#,
                "steps[0].after",
            ),
            (
                r#"{"steps":[{"name":"a","command":"x","after":["b"]},{"name":"b","command":"x","after":["a"]}]}"#,
                "steps",
            ),
            (r#"{"steps":[{"name":"a"}]}"#, "steps[0].command"),
            (
                r#"{"steps":[{"name":"a","command":"x","cpus":0}]}"#,
                "steps[0].cpus",
            ),
        ];
        for (text, field) in cases {
            let e = req(text).validate().unwrap_err();
            assert_eq!(e.field.as_deref(), Some(field), "{text}: {e:?}");
        }
        assert!(
            serde_json::from_str::<PipelineRequest>(r#"{"steps":[{"name":"a","bogus":1}]}"#)
                .is_err()
        );
    }

    #[test]
    fn graphs() {
        let v = |id, name: &str, state, after: Vec<i64>| StepView {
            id,
            name: name.into(),
            state,
            reason: None,
            after,
        };
        let line = render_graph(&[
            v(1, "pre", JobState::Succeeded, vec![]),
            v(2, "mesh", JobState::Running, vec![1]),
        ]);
        assert_eq!(line, "pre (SUCCEEDED) -> mesh (RUNNING)\n");
        let dag = render_graph(&[
            v(1, "pre", JobState::Succeeded, vec![]),
            v(2, "a", JobState::Running, vec![1]),
            v(3, "b", JobState::Running, vec![1]),
            v(4, "post", JobState::Pending, vec![2, 3]),
        ]);
        assert!(dag.contains("post  #4      PENDING     <- a, b"), "{dag}");
    }
}
