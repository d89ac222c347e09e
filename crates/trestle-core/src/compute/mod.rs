//! Compute environments and job queues, after AWS Batch's model.
//!
//! A compute environment (CE) is a pool of capacity: a provider (`local`
//! worker processes, `slurm` pilot jobs), a capacity type, the instance
//! shapes it may launch, vCPU limits, an allocation strategy and the idle
//! timeout of its workers. A queue has a priority and an ordered list of
//! CEs: its jobs fill the first CE and spill to the next once the first is
//! at `max_vcpus`.
//!
//! Both arrive as requests (JSON bodies, `trestle.toml` tables) with
//! human-friendly values (`"4G"`, `"90s"`) and are validated into specs;
//! every rejection names the field that is wrong.

pub mod scale;

use crate::batch::placement::Capacity;
use crate::error::{Result, ValidationError};
use crate::parse::{parse_duration, parse_memory_mib};
use serde::{Deserialize, Serialize};

/// Most shapes one CE may declare.
pub const MAX_SHAPES: usize = 32;
/// Most CEs one queue may list.
pub const MAX_QUEUE_ENVS: usize = 16;
/// Highest queue priority.
pub const MAX_QUEUE_PRIORITY: i64 = 1_000_000;
/// A job's stored sort key is `queue priority * QUEUE_PRIORITY_STEP + job
/// priority`, so jobs of a higher-priority queue always come first and job
/// priorities (any `i32`) order jobs within a queue.
pub const QUEUE_PRIORITY_STEP: i64 = 1 << 32;
/// Default idle timeout of a CE's workers.
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 60;
/// Default time limit of Slurm pilots.
pub const DEFAULT_SLURM_TIME_LIMIT_SECS: u64 = 24 * 3600;

/// Where a CE's workers run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderKind {
    /// Worker processes on the server's host.
    Local,
    /// Worker pilot jobs submitted to Slurm with `sbatch`.
    Slurm,
}

impl ProviderKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Local => "local",
            ProviderKind::Slurm => "slurm",
        }
    }
}

/// On-demand or spot (interruptible) capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CapacityType {
    /// Capacity that stays until released.
    OnDemand,
    /// Cheaper capacity that may be taken away (preemptible partitions).
    Spot,
}

impl CapacityType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            CapacityType::OnDemand => "on-demand",
            CapacityType::Spot => "spot",
        }
    }
}

/// How a CE picks the shape of a new worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AllocationStrategy {
    /// The cheapest shape that fits; wait while it cannot be had.
    BestFit,
    /// The cheapest shape that fits and can be had, moving on to the next
    /// one after capacity errors; may pass `max_vcpus` by one instance.
    BestFitProgressive,
    /// The fitting shape with the most available capacity; may pass
    /// `max_vcpus` by one instance.
    SpotCapacityOptimized,
}

impl AllocationStrategy {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            AllocationStrategy::BestFit => "best-fit",
            AllocationStrategy::BestFitProgressive => "best-fit-progressive",
            AllocationStrategy::SpotCapacityOptimized => "spot-capacity-optimized",
        }
    }

    /// True when the strategy may launch one instance past `max_vcpus`.
    pub fn may_overshoot(self) -> bool {
        !matches!(self, AllocationStrategy::BestFit)
    }
}

/// One instance shape a CE may launch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shape {
    /// Name, unique within the CE.
    pub name: String,
    /// vCPUs of one worker.
    pub vcpus: u32,
    /// Memory of one worker, MiB.
    pub mem_mib: u64,
    /// GPUs of one worker.
    pub gpus: u32,
    /// Price per hour (for cost and for choosing the cheapest).
    pub price_per_hour: f64,
}

impl Shape {
    /// What one worker of this shape offers.
    pub fn capacity(&self) -> Capacity {
        Capacity {
            cpus: self.vcpus,
            mem_mib: self.mem_mib,
            gpus: self.gpus,
        }
    }
}

/// Settings of a `slurm` CE's pilots.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlurmSettings {
    /// `--partition` (default: the cluster's default partition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// `--account`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// `--qos`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qos: Option<String>,
    /// Further `sbatch` options, each one argument (`--constraint=ib`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_args: Vec<String>,
    /// `--time` of every pilot, seconds.
    pub time_limit_secs: u64,
    /// Where pilots write their own output (`--output`), a directory the
    /// compute nodes can write; none: `/dev/null`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_dir: Option<String>,
}

/// A validated compute environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComputeEnvSpec {
    /// Name.
    pub name: String,
    /// Where its workers run.
    pub provider: ProviderKind,
    /// On-demand or spot.
    pub capacity_type: CapacityType,
    /// Shapes it may launch (at least one).
    pub shapes: Vec<Shape>,
    /// vCPUs kept running even without work.
    pub min_vcpus: u32,
    /// Most vCPUs across its workers.
    pub max_vcpus: u32,
    /// How shapes are chosen.
    pub allocation_strategy: AllocationStrategy,
    /// A worker without work for this long is retired.
    pub idle_timeout_secs: u64,
    /// When false, nothing is launched (running workers finish their work).
    pub enabled: bool,
    /// Jobs a worker leases beyond its free capacity.
    #[serde(default)]
    pub prefetch: u32,
    /// Scratch root of its workers (default: the worker's temporary directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_dir: Option<String>,
    /// The `trestle` binary as the workers' hosts see it (default: the
    /// server's own executable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program: Option<String>,
    /// Slurm settings (provider `slurm` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm: Option<SlurmSettings>,
}

impl ComputeEnvSpec {
    /// The shape called `name`.
    pub fn shape(&self, name: &str) -> Option<&Shape> {
        self.shapes.iter().find(|s| s.name == name)
    }
}

/// A size or duration written as a number or a string (`4096`, `"4G"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Quantity {
    /// A bare number (MiB for memory, seconds for durations).
    Number(u64),
    /// Text with a unit.
    Text(String),
}

impl Quantity {
    fn mem_mib(&self, field: &str) -> Result<u64> {
        match self {
            Quantity::Number(n) => Ok(*n),
            Quantity::Text(t) => parse_memory_mib(field, t),
        }
    }

    fn secs(&self, field: &str) -> Result<u64> {
        match self {
            Quantity::Number(n) => Ok(*n),
            Quantity::Text(t) => parse_duration(field, t, false),
        }
    }
}

/// One shape as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShapeRequest {
    /// Name (default: `s<index>`).
    pub name: Option<String>,
    /// vCPUs (required).
    pub vcpus: Option<u32>,
    /// Memory (`4G`, or MiB; required).
    pub memory: Option<Quantity>,
    /// GPUs (default 0).
    pub gpus: Option<u32>,
    /// Price per hour (default 0).
    pub price_per_hour: Option<f64>,
}

/// Slurm settings as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmRequest {
    /// `--partition`.
    pub partition: Option<String>,
    /// `--account`.
    pub account: Option<String>,
    /// `--qos`.
    pub qos: Option<String>,
    /// Further `sbatch` options.
    pub extra_args: Option<Vec<String>>,
    /// Pilot time limit (`4h`, `1-00:00:00`; default one day).
    pub time_limit: Option<Quantity>,
    /// Directory for the pilots' own output.
    pub log_dir: Option<String>,
}

/// A compute environment as written (API body or `trestle.toml` table).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComputeEnvRequest {
    /// Name (API bodies; in `trestle.toml` the table key).
    pub name: Option<String>,
    /// `local` or `slurm` (required).
    pub provider: Option<String>,
    /// `on-demand` (default) or `spot`.
    pub capacity_type: Option<String>,
    /// Instance shapes (at least one).
    pub shapes: Option<Vec<ShapeRequest>>,
    /// Default 0.
    pub min_vcpus: Option<u32>,
    /// Required.
    pub max_vcpus: Option<u32>,
    /// `best-fit` (default), `best-fit-progressive`, `spot-capacity-optimized`.
    pub allocation_strategy: Option<String>,
    /// Default `60s`.
    pub idle_timeout: Option<Quantity>,
    /// Default true.
    pub enabled: Option<bool>,
    /// Default 0.
    pub prefetch: Option<u32>,
    /// Scratch root on the workers' hosts.
    pub work_dir: Option<String>,
    /// The `trestle` binary on the workers' hosts.
    pub program: Option<String>,
    /// Slurm settings.
    pub slurm: Option<SlurmRequest>,
}

/// A queue as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueRequest {
    /// Name (API bodies).
    pub name: Option<String>,
    /// Higher is served first (default 0, at most 1 000 000).
    pub priority: Option<i64>,
    /// CEs in order of preference (empty: every CE).
    pub compute_environments: Option<Vec<String>>,
}

/// A validated queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueSpec {
    /// Name.
    pub name: String,
    /// Higher is served first.
    pub priority: i64,
    /// CEs in order of preference; empty means every CE.
    pub compute_environments: Vec<String>,
}

/// Checks a CE, queue or shape name: 1-64 letters, digits, `-` or `_`.
pub fn check_name(field: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new(
            "invalid-name",
            field,
            format!("`{name}` must be 1-64 letters, digits, `-` or `_`"),
        ))
    }
}

fn bad(field: &str, message: impl Into<String>) -> ValidationError {
    ValidationError::new("invalid-field", field, message)
}

fn missing(field: &str) -> ValidationError {
    ValidationError::new("missing-field", field, format!("`{field}` is required"))
}

fn parse_word<T: Copy>(field: &str, text: &str, options: &[(&str, T)]) -> Result<T> {
    options
        .iter()
        .find(|(w, _)| w.eq_ignore_ascii_case(text.trim()))
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let names: Vec<&str> = options.iter().map(|(w, _)| *w).collect();
            bad(
                field,
                format!("`{text}` is not one of: {}", names.join(", ")),
            )
        })
}

/// A text setting: non-empty, one line, at most 1024 bytes.
fn check_text(field: &str, v: &str) -> Result<()> {
    if v.trim().is_empty() || v.contains(['\n', '\r', '\0']) || v.len() > 1024 {
        return Err(bad(
            field,
            "must be non-empty text on one line (at most 1024 bytes)",
        ));
    }
    Ok(())
}

impl ComputeEnvRequest {
    /// Validates into a spec called `name` (the body's own `name`, when
    /// given, must agree).
    pub fn validate(self, name: &str) -> Result<ComputeEnvSpec> {
        check_name("name", name)?;
        if let Some(n) = &self.name
            && n != name
        {
            return Err(bad(
                "name",
                format!("the body names `{n}` but the path names `{name}`"),
            ));
        }
        let provider = parse_word(
            "provider",
            self.provider
                .as_deref()
                .ok_or_else(|| missing("provider"))?,
            &[
                ("local", ProviderKind::Local),
                ("slurm", ProviderKind::Slurm),
            ],
        )?;
        let capacity_type = parse_word(
            "capacity_type",
            self.capacity_type.as_deref().unwrap_or("on-demand"),
            &[
                ("on-demand", CapacityType::OnDemand),
                ("spot", CapacityType::Spot),
            ],
        )?;
        let allocation_strategy = parse_word(
            "allocation_strategy",
            self.allocation_strategy.as_deref().unwrap_or("best-fit"),
            &[
                ("best-fit", AllocationStrategy::BestFit),
                (
                    "best-fit-progressive",
                    AllocationStrategy::BestFitProgressive,
                ),
                (
                    "spot-capacity-optimized",
                    AllocationStrategy::SpotCapacityOptimized,
                ),
            ],
        )?;
        if allocation_strategy == AllocationStrategy::SpotCapacityOptimized
            && capacity_type != CapacityType::Spot
        {
            return Err(bad(
                "allocation_strategy",
                "spot-capacity-optimized needs capacity_type = \"spot\"",
            ));
        }
        let shapes = validate_shapes(self.shapes.ok_or_else(|| missing("shapes"))?)?;
        let min_vcpus = self.min_vcpus.unwrap_or(0);
        let max_vcpus = self.max_vcpus.ok_or_else(|| missing("max_vcpus"))?;
        if max_vcpus < min_vcpus {
            return Err(bad(
                "max_vcpus",
                format!("max_vcpus ({max_vcpus}) is smaller than min_vcpus ({min_vcpus})"),
            ));
        }
        let smallest = shapes.iter().map(|s| s.vcpus).min().unwrap_or(1);
        if max_vcpus > 0 && max_vcpus < smallest {
            return Err(bad(
                "max_vcpus",
                format!(
                    "max_vcpus ({max_vcpus}) is smaller than the smallest shape ({smallest} vCPUs); nothing could ever start"
                ),
            ));
        }
        let idle_timeout_secs = match &self.idle_timeout {
            Some(q) => q.secs("idle_timeout")?,
            None => DEFAULT_IDLE_TIMEOUT_SECS,
        };
        if idle_timeout_secs == 0 {
            return Err(bad("idle_timeout", "must be at least 1s"));
        }
        for (field, v) in [("work_dir", &self.work_dir), ("program", &self.program)] {
            if let Some(v) = v {
                check_text(field, v)?;
            }
        }
        let slurm = match (provider, self.slurm) {
            (ProviderKind::Slurm, s) => Some(validate_slurm(s.unwrap_or_default())?),
            (_, Some(_)) => {
                return Err(bad(
                    "slurm",
                    "Slurm settings are only for provider = \"slurm\"",
                ));
            }
            (_, None) => None,
        };
        Ok(ComputeEnvSpec {
            name: name.to_string(),
            provider,
            capacity_type,
            shapes,
            min_vcpus,
            max_vcpus,
            allocation_strategy,
            idle_timeout_secs,
            enabled: self.enabled.unwrap_or(true),
            prefetch: self.prefetch.unwrap_or(0),
            work_dir: self.work_dir,
            program: self.program,
            slurm,
        })
    }
}

fn validate_shapes(list: Vec<ShapeRequest>) -> Result<Vec<Shape>> {
    if list.is_empty() {
        return Err(bad(
            "shapes",
            "a compute environment needs at least one shape",
        ));
    }
    if list.len() > MAX_SHAPES {
        return Err(bad("shapes", format!("at most {MAX_SHAPES} shapes")));
    }
    let mut out: Vec<Shape> = Vec::with_capacity(list.len());
    for (i, s) in list.into_iter().enumerate() {
        let f = |k: &str| format!("shapes[{i}].{k}");
        let name = s.name.unwrap_or_else(|| format!("s{i}"));
        check_name(&f("name"), &name)?;
        if out.iter().any(|o| o.name == name) {
            return Err(bad(&f("name"), format!("shape `{name}` is declared twice")));
        }
        let vcpus = s.vcpus.ok_or_else(|| missing(&f("vcpus")))?;
        if vcpus == 0 {
            return Err(bad(&f("vcpus"), "a shape needs at least one vCPU"));
        }
        let mem_mib = s
            .memory
            .ok_or_else(|| missing(&f("memory")))?
            .mem_mib(&f("memory"))?;
        if mem_mib == 0 {
            return Err(bad(&f("memory"), "a shape needs some memory"));
        }
        let price_per_hour = s.price_per_hour.unwrap_or(0.0);
        if !price_per_hour.is_finite() || price_per_hour < 0.0 {
            return Err(bad(&f("price_per_hour"), "must be a number of at least 0"));
        }
        out.push(Shape {
            name,
            vcpus,
            mem_mib,
            gpus: s.gpus.unwrap_or(0),
            price_per_hour,
        });
    }
    Ok(out)
}

fn validate_slurm(s: SlurmRequest) -> Result<SlurmSettings> {
    for (field, v) in [
        ("slurm.partition", &s.partition),
        ("slurm.account", &s.account),
        ("slurm.qos", &s.qos),
    ] {
        if let Some(v) = v
            && (v.is_empty()
                || v.len() > 128
                || !v
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.,".contains(&b)))
        {
            return Err(bad(
                field,
                format!("`{v}` must be 1-128 letters, digits, `-`, `_`, `.` or `,`"),
            ));
        }
    }
    let extra_args = s.extra_args.unwrap_or_default();
    for (i, a) in extra_args.iter().enumerate() {
        let field = format!("slurm.extra_args[{i}]");
        check_text(&field, a)?;
        if !a.starts_with('-') {
            return Err(bad(
                &field,
                format!("`{a}` is not an option; write each as one argument, like --constraint=ib"),
            ));
        }
        let key = a.split('=').next().unwrap_or(a);
        const OURS: &[&str] = &[
            "--wrap",
            "--export",
            "--parsable",
            "--job-name",
            "-J",
            "--comment",
            "--output",
            "-o",
            "--array",
            "-a",
        ];
        if OURS.contains(&key) {
            return Err(bad(
                &field,
                format!("{key} is set by Trestle for every pilot and cannot be changed"),
            ));
        }
    }
    let time_limit_secs = match &s.time_limit {
        Some(Quantity::Text(t)) => parse_duration("slurm.time_limit", t, false)?,
        Some(Quantity::Number(n)) => *n,
        None => DEFAULT_SLURM_TIME_LIMIT_SECS,
    };
    if time_limit_secs < 60 {
        return Err(bad("slurm.time_limit", "must be at least one minute"));
    }
    if let Some(d) = &s.log_dir {
        check_text("slurm.log_dir", d)?;
    }
    Ok(SlurmSettings {
        partition: s.partition,
        account: s.account,
        qos: s.qos,
        extra_args,
        time_limit_secs,
        log_dir: s.log_dir,
    })
}

impl QueueRequest {
    /// Validates into a spec called `name`. Whether the CEs exist is
    /// checked by [`check_queue_envs`], against the CEs that do.
    pub fn validate(self, name: &str) -> Result<QueueSpec> {
        check_name("name", name)?;
        if let Some(n) = &self.name
            && n != name
        {
            return Err(bad(
                "name",
                format!("the body names `{n}` but the path names `{name}`"),
            ));
        }
        let priority = self.priority.unwrap_or(0);
        if !(0..=MAX_QUEUE_PRIORITY).contains(&priority) {
            return Err(bad(
                "priority",
                format!("must be between 0 and {MAX_QUEUE_PRIORITY}"),
            ));
        }
        let envs = self.compute_environments.unwrap_or_default();
        if envs.len() > MAX_QUEUE_ENVS {
            return Err(bad(
                "compute_environments",
                format!("at most {MAX_QUEUE_ENVS} compute environments"),
            ));
        }
        for (i, e) in envs.iter().enumerate() {
            let field = format!("compute_environments[{i}]");
            check_name(&field, e)?;
            if envs[..i].contains(e) {
                return Err(bad(&field, format!("`{e}` is listed twice")));
            }
        }
        Ok(QueueSpec {
            name: name.to_string(),
            priority,
            compute_environments: envs,
        })
    }
}

/// Checks that every CE a queue lists exists.
pub fn check_queue_envs(q: &QueueSpec, known: &[&str]) -> Result<()> {
    for (i, e) in q.compute_environments.iter().enumerate() {
        if !known.contains(&e.as_str()) {
            return Err(ValidationError::new(
                "unknown-compute-environment",
                &format!("compute_environments[{i}]"),
                format!("there is no compute environment `{e}`"),
            ));
        }
    }
    Ok(())
}

/// Parses a JSON value into `T`, naming the field when it fails.
pub fn from_value<T: serde::de::DeserializeOwned>(mut value: serde_json::Value) -> Result<T> {
    crate::parse::integral_numbers(&mut value);
    serde_path_to_error::deserialize(value).map_err(|e| {
        let mut field = e.path().to_string();
        if field == "." {
            field.clear();
        }
        ValidationError::new("invalid-field", &field, e.inner().to_string())
    })
}

#[cfg(test)]
mod tests;
