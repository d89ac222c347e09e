//! Resource samples and alarm states on the wire: what workers send with
//! their heartbeats, and `GET /api/v1/jobs/{id}/samples`.

use crate::alarm::AlarmState;
use serde::{Deserialize, Serialize};

/// One sample of a running attempt's process tree, taken by its worker.
/// Percentages are of what the task was given: CPU of its allocated CPUs
/// (200 % is two CPUs' worth), memory of its requested memory, disk of
/// its scratch filesystem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSample {
    /// Job id.
    pub job_id: i64,
    /// Attempt number.
    pub attempt: u32,
    /// When it was taken (ms).
    pub time: i64,
    /// CPU use since the previous sample, percent of the allocated CPUs.
    pub cpu_pct: f64,
    /// Resident memory of the whole tree (KiB).
    pub rss_kib: u64,
    /// `rss_kib` as a percent of the requested memory.
    pub mem_pct: f64,
    /// Bytes under the attempt's scratch directory, when measured (at most
    /// every 30 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_bytes: Option<u64>,
    /// `disk_bytes` as a percent of the scratch filesystem's size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_pct: Option<f64>,
}

/// A stored sample, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleView {
    /// Attempt number.
    pub attempt: u32,
    /// When (ms); for a downsampled row, the start of its minute.
    pub time: i64,
    /// CPU percent of the allocated CPUs (a minute's mean when downsampled).
    pub cpu_pct: f64,
    /// Resident memory (KiB; a minute's peak when downsampled).
    pub rss_kib: u64,
    /// Memory percent of the request.
    pub mem_pct: f64,
    /// Scratch bytes, when measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_bytes: Option<u64>,
    /// Disk percent, when measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_pct: Option<f64>,
    /// 0 for a raw sample, 60000 for one per minute.
    #[serde(default)]
    pub resolution_ms: i64,
}

/// One alarm rule's state for one attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmView {
    /// Attempt number.
    pub attempt: u32,
    /// The rule (`cpu_high`, `cpu_idle`, `memory_high`, `disk_high`).
    pub rule: String,
    /// OK or ALARM.
    pub state: AlarmState,
    /// When it last changed (ms).
    pub changed_at: i64,
    /// The value (percent) that caused the last change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// The rule's condition in words, as configured now
    /// (`CPU above 95% for 3m`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub condition: String,
}

/// `GET /api/v1/jobs/{id}/samples`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSamples {
    /// Job id.
    pub job_id: i64,
    /// The samples, oldest first.
    pub samples: Vec<SampleView>,
    /// Alarm states of its attempts.
    pub alarms: Vec<AlarmView>,
}
