//! Resource use on the job and workspace pages: each ended attempt's
//! efficiency (elapsed, CPU time and efficiency, MaxRSS against the
//! request, as `seff` shows them), the alarm states, and sparklines of
//! the recent samples (inline SVG, no script).

use maud::{Markup, html};
use trestle_core::alarm::AlarmState;
use trestle_core::api::JobView;
use trestle_core::api::samples::{AlarmView, SampleView};
use trestle_core::batch::efficiency::{clock, kib};

/// Samples a sparkline shows at most (the newest).
pub const SPARK_SAMPLES: u32 = 300;

/// A sparkline of `values` (percent; the scale grows past 100 when a value
/// does), `label` for screen readers.
pub fn sparkline(values: &[f64], label: &str, class: &str) -> Markup {
    let (w, h) = (240.0f64, 40.0f64);
    let top = values.iter().copied().fold(100.0f64, f64::max);
    let n = values.len();
    let points: String = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let x = if n > 1 {
                w * i as f64 / (n - 1) as f64
            } else {
                w
            };
            let y = h - (v.max(0.0) / top) * (h - 2.0) - 1.0;
            format!("{x:.1},{y:.1}")
        })
        .collect::<Vec<_>>()
        .join(" ");
    let last = values.last().copied().unwrap_or(0.0);
    html! {
        svg class={ "spark " (class) } viewBox={ "0 0 " (w) " " (h) } width=(w) height=(h)
            role="img" aria-label={ (label) ", latest " (format!("{last:.1}")) "%" } {
            line x1="0" y1=(h - (100.0 / top) * (h - 2.0) - 1.0) x2=(w) y2=(h - (100.0 / top) * (h - 2.0) - 1.0) class="full" {}
            @if n > 0 { polyline points=(points) {} }
        }
    }
}

fn alarm_badge(a: &AlarmView) -> Markup {
    let class = match a.state {
        AlarmState::Alarm => "badge s-failed",
        AlarmState::Ok => "badge s-succeeded",
    };
    html! { span class=(class) { (a.state.as_str()) } }
}

/// Alarm states as a table.
pub fn alarm_table(alarms: &[AlarmView]) -> Markup {
    html! {
        div class="scroll" { table class="alarms" {
            thead { tr { th scope="col" { "#" } th scope="col" { "Alarm" } th scope="col" { "State" } th scope="col" { "Rule" } th scope="col" { "Value" } th scope="col" { "Since" } } }
            tbody { @for a in alarms { tr data-rule=(a.rule) data-state=(a.state.as_str()) {
                td { (a.attempt) } td { (a.rule) } td { (alarm_badge(a)) }
                td { (a.condition) }
                td { (a.value.map(|v| format!("{v:.1}%")).unwrap_or_default()) }
                td { (super::when(a.changed_at)) }
            } } }
        } }
    }
}

/// The CPU, memory and (when measured) disk sparklines of `samples`.
pub fn sparklines(samples: &[SampleView]) -> Markup {
    let cpu: Vec<f64> = samples.iter().map(|s| s.cpu_pct).collect();
    let mem: Vec<f64> = samples.iter().map(|s| s.mem_pct).collect();
    let disk: Vec<f64> = samples.iter().filter_map(|s| s.disk_pct).collect();
    html! {
        dl class="sparks" {
            dt { "CPU (% of allocated)" } dd { (sparkline(&cpu, "CPU use", "cpu")) }
            dt { "Memory (% of requested)" } dd { (sparkline(&mem, "Memory use", "mem")) }
            @if !disk.is_empty() { dt { "Disk (% of scratch)" } dd { (sparkline(&disk, "Disk use", "disk")) } }
        }
    }
}

/// The job page's resource section.
pub fn section(j: &JobView, samples: &[SampleView]) -> Markup {
    let mem = j.spec.resources.mem_mib;
    let ended: Vec<_> = j
        .attempts
        .iter()
        .filter_map(|a| a.efficiency.map(|e| (a.attempt, e)))
        .collect();
    let pct = |p: Option<f64>| p.map(|p| format!("{p:.1}%")).unwrap_or_else(|| "-".into());
    html! {
        section aria-labelledby="usage-h" id="usage" {
            h2 id="usage-h" { "Resource use" }
            @if !ended.is_empty() {
                div class="scroll" { table class="efficiency" {
                    thead { tr { th scope="col" { "#" } th scope="col" { "Elapsed" } th scope="col" { "CPU time" } th scope="col" { "CPU efficiency" } th scope="col" { "MaxRSS" } th scope="col" { "Of " (mem) " MiB requested" } } }
                    tbody { @for (n, e) in &ended { tr {
                        td { (n) } td { (clock(e.elapsed_ms)) }
                        td { (e.cpu_ms.map(clock).unwrap_or_else(|| "-".into())) }
                        td { (pct(e.cpu_efficiency)) }
                        td { (e.max_rss_kib.map(kib).unwrap_or_else(|| "-".into())) }
                        td { (pct(e.memory_efficiency)) }
                    } } }
                } }
            }
            @if !j.alarms.is_empty() { h3 { "Alarms" } (alarm_table(&j.alarms)) }
            @if samples.is_empty() {
                p class="empty" { "No resource samples." }
            } @else {
                h3 { "Recent samples" }
                (sparklines(samples))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparklines_scale_to_the_largest_value() {
        let s = sparkline(&[0.0, 50.0, 200.0], "CPU use", "cpu").into_string();
        assert!(
            s.contains("points=\"0.0,39.0 120.0,29.5 240.0,1.0\""),
            "{s}"
        );
        assert!(s.contains("latest 200.0%"));
        let empty = sparkline(&[], "x", "cpu").into_string();
        assert!(!empty.contains("polyline"));
    }
}
