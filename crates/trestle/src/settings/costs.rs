//! `[costs]` in `trestle.toml`: the unit every charge and budget is in,
//! optional per-resource weights (core-hours, GPU-hours, service units),
//! the price of workers no compute environment launched, and how often
//! the meter and the budgets run.
//!
//! ```toml
//! [costs]
//! unit = "SU"
//! weights = { cpu = 1.0, mem_gib = 0.25, gpu = 16.0 }
//! meter_interval = "10s"
//! budget_interval = "30s"
//! ```

use anyhow::{Result, anyhow};
use serde::Deserialize;
use std::time::Duration;
use trestle_core::cost::{CostSettings, Weights};
use trestle_service::metering::CostConfig;

/// `[costs]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CostsFile {
    /// The unit (default `USD`).
    pub unit: Option<String>,
    /// Per CPU-hour, GiB-hour and GPU-hour; set, they replace shape prices.
    pub weights: Option<Weights>,
    /// Price per hour of a worker started by hand (default 0).
    pub default_price_per_hour: Option<f64>,
    /// Price of study storage per GiB-month (default 0).
    pub storage_per_gib_month: Option<f64>,
    /// Time between meter ticks (default `10s`).
    pub meter_interval: Option<String>,
    /// Time between budget evaluations (default `30s`).
    pub budget_interval: Option<String>,
    /// The time limit escrow reservations assume for jobs without one
    /// (default `24h`).
    pub default_max_run_time: Option<String>,
}

fn interval(field: &str, v: Option<&str>, default: Duration) -> Result<Duration> {
    let Some(v) = v else { return Ok(default) };
    let ms = humantime_ms(field, v)?;
    if ms == 0 {
        return Err(anyhow!("{field}: must be above 0"));
    }
    Ok(Duration::from_millis(ms))
}

/// `500ms`, `2s`, `1m`: sub-second intervals are allowed (tests).
fn humantime_ms(field: &str, v: &str) -> Result<u64> {
    if let Some(ms) = v.strip_suffix("ms") {
        return ms
            .trim()
            .parse()
            .map_err(|_| anyhow!("{field}: `{v}` is not a duration"));
    }
    trestle_core::parse::parse_duration(field, v, false)
        .map(|s| s * 1000)
        .map_err(|e| anyhow!("{field}: {}", e.message))
}

/// Builds the server's cost configuration.
pub fn build(f: CostsFile) -> Result<CostConfig> {
    let d = CostConfig::default();
    let settings = CostSettings {
        unit: f.unit.unwrap_or(d.settings.unit),
        weights: f.weights,
        default_price_per_hour: f.default_price_per_hour.unwrap_or(0.0),
        storage_per_gib_month: f.storage_per_gib_month.unwrap_or(0.0),
    };
    settings
        .validate()
        .map_err(|e| anyhow!("{}: {}", e.field.as_deref().unwrap_or("costs"), e.message))?;
    Ok(CostConfig {
        settings,
        meter_every: interval(
            "costs.meter_interval",
            f.meter_interval.as_deref(),
            d.meter_every,
        )?,
        budget_every: interval(
            "costs.budget_interval",
            f.budget_interval.as_deref(),
            d.budget_every,
        )?,
        default_max_run: interval(
            "costs.default_max_run_time",
            f.default_max_run_time.as_deref(),
            d.default_max_run,
        )?,
    })
}
