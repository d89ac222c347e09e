//! What things cost: the price of a worker, a task's share of it, the
//! charge of an interval, and how usage rolls up per day. Budgets (their
//! periods, thresholds, forecasts and enforcement) are in [`budget`].
//!
//! Every charge is in the site's unit ([`CostSettings::unit`]): money by
//! default, priced per shape; or any unit with per-resource weights
//! (core-hours, GPU-hours, service units), like Slurm's
//! `TRESBillingWeights`.

pub mod budget;
pub mod daily;

use crate::batch::job::Resources;
use crate::batch::placement::Capacity;
use crate::compute::ComputeEnvSpec;
use crate::error::ValidationError;
use serde::{Deserialize, Serialize};

/// Milliseconds in an hour.
const HOUR_MS: f64 = 3_600_000.0;

/// Per-resource weights: a task's charge per hour is the sum of what it
/// holds times each weight (Slurm's `TRESBillingWeights`, summed).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Weights {
    /// Per CPU-hour.
    #[serde(default)]
    pub cpu: f64,
    /// Per GiB-hour of memory.
    #[serde(default)]
    pub mem_gib: f64,
    /// Per GPU-hour.
    #[serde(default)]
    pub gpu: f64,
}

/// How a site charges.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostSettings {
    /// The unit every charge and budget is in (`USD`, `SU`, `core-hours`).
    pub unit: String,
    /// With weights, charges follow them and shape prices are ignored.
    pub weights: Option<Weights>,
    /// Price per hour of a worker that no compute environment launched
    /// (a `trestle worker` started by hand), for its whole capacity.
    pub default_price_per_hour: f64,
    /// Price of study storage per GiB-month (0: storage is free).
    pub storage_per_gib_month: f64,
}

impl Default for CostSettings {
    fn default() -> Self {
        CostSettings {
            unit: "USD".into(),
            weights: None,
            default_price_per_hour: 0.0,
            storage_per_gib_month: 0.0,
        }
    }
}

impl CostSettings {
    /// Checks the settings (`field` prefixes the names in errors).
    pub fn validate(&self) -> Result<(), ValidationError> {
        let unit = self.unit.trim();
        if unit.is_empty() || unit.len() > 16 || unit.chars().any(char::is_control) {
            return Err(ValidationError::new(
                "invalid-unit",
                "costs.unit",
                "the unit is 1-16 printable characters (USD, EUR, SU, core-hours)",
            ));
        }
        let bad = |v: f64| !v.is_finite() || v < 0.0;
        if bad(self.storage_per_gib_month) {
            return Err(ValidationError::new(
                "invalid-price",
                "costs.storage_per_gib_month",
                "a price is a number of at least 0",
            ));
        }
        if bad(self.default_price_per_hour) {
            return Err(ValidationError::new(
                "invalid-price",
                "costs.default_price_per_hour",
                "a price is a number of at least 0",
            ));
        }
        if let Some(w) = &self.weights
            && (bad(w.cpu) || bad(w.mem_gib) || bad(w.gpu))
        {
            return Err(ValidationError::new(
                "invalid-weight",
                "costs.weights",
                "weights are numbers of at least 0",
            ));
        }
        Ok(())
    }
}

/// What one worker costs: its shape and that shape's price, fixed when
/// the worker registers (the price in force while it runs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerPrice {
    /// The shape's name (`local`, `c4`), or `unpriced`.
    pub shape: String,
    /// The shape's size: a task's share is taken of it.
    pub size: Capacity,
    /// The shape's price per hour.
    pub price_per_hour: f64,
}

/// The price of a worker with `capacity` launched by `env` (none: started
/// by hand): the env's shape it matches (same CPUs and GPUs, the closest
/// memory), else the smallest shape that holds it, else the whole
/// worker at the site's default price.
pub fn price_worker(
    env: Option<&ComputeEnvSpec>,
    capacity: Capacity,
    settings: &CostSettings,
) -> WorkerPrice {
    let fallback = WorkerPrice {
        shape: "unpriced".into(),
        size: capacity,
        price_per_hour: settings.default_price_per_hour,
    };
    let Some(env) = env else { return fallback };
    let exact = env
        .shapes
        .iter()
        .filter(|s| s.vcpus == capacity.cpus && s.gpus == capacity.gpus)
        .min_by_key(|s| s.mem_mib.abs_diff(capacity.mem_mib));
    let holding = || {
        env.shapes
            .iter()
            .filter(|s| {
                s.capacity().fits(&Resources {
                    cpus: capacity.cpus,
                    mem_mib: capacity.mem_mib,
                    gpus: capacity.gpus,
                })
            })
            .min_by(|a, b| a.price_per_hour.total_cmp(&b.price_per_hour))
    };
    match exact.or_else(holding) {
        Some(s) => WorkerPrice {
            shape: s.name.clone(),
            size: s.capacity(),
            price_per_hour: s.price_per_hour,
        },
        None => fallback,
    }
}

/// A task's share of its worker's shape: the largest of its shares of
/// the CPUs, the memory and the GPUs, at most the whole shape.
pub fn share(alloc: Resources, size: Capacity) -> f64 {
    let part = |used: f64, total: f64| if total > 0.0 { used / total } else { 0.0 };
    let s = part(f64::from(alloc.cpus), f64::from(size.cpus))
        .max(part(alloc.mem_mib as f64, size.mem_mib as f64))
        .max(part(f64::from(alloc.gpus), f64::from(size.gpus)));
    s.clamp(0.0, 1.0)
}

/// What holding `alloc` on a worker priced `price` costs per hour: with
/// weights, the weighted sum of what it holds; otherwise its share of
/// the shape's price.
pub fn rate_per_hour(alloc: Resources, price: &WorkerPrice, settings: &CostSettings) -> f64 {
    match &settings.weights {
        Some(w) => {
            w.cpu * f64::from(alloc.cpus)
                + w.mem_gib * alloc.mem_mib as f64 / 1024.0
                + w.gpu * f64::from(alloc.gpus)
        }
        None => share(alloc, price.size) * price.price_per_hour,
    }
}

/// The charge of holding something at `rate_per_hour` from `start_ms` to
/// `end_ms` (per millisecond: exact from the timestamps).
pub fn charge(rate_per_hour: f64, start_ms: i64, end_ms: i64) -> f64 {
    let ms = (end_ms - start_ms).max(0) as f64;
    rate_per_hour * ms / HOUR_MS
}

/// A worker's idle overhead: what its whole shape cost while it ran,
/// less what its tasks were charged (never below zero).
pub fn overhead(
    price: &WorkerPrice,
    settings: &CostSettings,
    start_ms: i64,
    end_ms: i64,
    charged: f64,
) -> f64 {
    let size = price.size;
    let whole = rate_per_hour(
        Resources {
            cpus: size.cpus,
            mem_mib: size.mem_mib,
            gpus: size.gpus,
        },
        price,
        settings,
    );
    (charge(whole, start_ms, end_ms) - charged).max(0.0)
}

/// What storing `bytes` for one day costs at `per_gib_month` (a month
/// taken as 30 days).
pub fn storage_day(bytes: u64, per_gib_month: f64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0 * 1024.0) * per_gib_month / 30.0
}

/// A charge for people: `12.35 USD`, `0.0042 SU`.
pub fn format(amount: f64, unit: &str) -> String {
    // An empty sum of floats is -0.0.
    let amount = if amount == 0.0 { 0.0 } else { amount };
    if amount != 0.0 && amount.abs() < 0.01 {
        format!("{amount:.4} {unit}")
    } else {
        format!("{amount:.2} {unit}")
    }
}

#[cfg(test)]
mod tests;
