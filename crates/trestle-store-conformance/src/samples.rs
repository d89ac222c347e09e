//! The conformance suite for resource samples and alarms (issue 15):
//! the CPU time and peak memory an attempt ends with, samples fenced by
//! the reporting worker's leases and read back, alarm states saved with
//! their events and found again once their attempt ends, and
//! downsampling as samples age.

use crate::support::{r, spec, worker};
use std::sync::Arc;
use trestle_core::alarm::{AlarmState, RuleState};
use trestle_core::api::samples::TaskSample;
use trestle_core::api::{AttemptKey, Lease, Update, UpdatesRequest};
use trestle_core::notify::event::{EventType, NewEvent};
use trestle_core::{AttemptReason, Capacity};
use trestle_store::{LeaseParams, Store};

/// Names of every check, for harnesses that enumerate them.
pub const CHECKS: &[&str] = &[
    "efficiency_is_stored_with_the_end",
    "samples_are_fenced_and_read_back",
    "alarm_states_and_events",
    "samples_are_downsampled_as_they_age",
];

/// Runs one named check.
pub async fn run(name: &str, s: Arc<dyn Store>) {
    match name {
        "efficiency_is_stored_with_the_end" => efficiency_is_stored_with_the_end(&*s).await,
        "samples_are_fenced_and_read_back" => samples_are_fenced_and_read_back(&*s).await,
        "alarm_states_and_events" => alarm_states_and_events(&*s).await,
        "samples_are_downsampled_as_they_age" => samples_are_downsampled_as_they_age(&*s).await,
        other => panic!("unknown samples check `{other}`"),
    }
}

const T0: i64 = 1_700_000_000_000;

/// Submits one 2-CPU job and leases it to `w`.
async fn running(s: &dyn Store, w: &str, now: i64) -> Lease {
    s.submit(
        &[spec(
            r#"{"name":"burn","command":["x"],"project":"p1","cpus":2,"memory":"1G"}"#,
        )],
        now,
    )
    .await
    .unwrap();
    s.lease(&LeaseParams {
        worker_id: w,
        free: Capacity {
            cpus: 2,
            mem_mib: 4096,
            gpus: 0,
        },
        max_jobs: 1,
        prefetch: 0,
        lease_ms: 600_000,
        now,
        kinds: &[],
    })
    .await
    .unwrap()
    .remove(0)
}

async fn send(s: &dyn Store, w: &str, updates: Vec<Update>, now: i64) {
    s.apply_updates(
        w,
        &UpdatesRequest {
            updates,
            ..Default::default()
        },
        600_000,
        now,
    )
    .await
    .unwrap();
}

fn sample(l: &Lease, time: i64, cpu: f64) -> TaskSample {
    TaskSample {
        job_id: l.job_id,
        attempt: l.attempt,
        time,
        cpu_pct: cpu,
        rss_kib: 1000 + (time - T0) as u64,
        mem_pct: 12.5,
        disk_bytes: None,
        disk_pct: None,
    }
}

fn key(l: &Lease) -> AttemptKey {
    AttemptKey {
        job_id: l.job_id,
        attempt: l.attempt,
    }
}

async fn efficiency_is_stored_with_the_end(s: &dyn Store) {
    worker(s, "w1", 2).await;
    let l = running(s, "w1", T0).await;
    send(
        s,
        "w1",
        vec![
            Update::Started {
                at: r(&l),
                time: T0 + 1000,
            },
            Update::Finished {
                at: r(&l),
                reason: AttemptReason::Success,
                exit_code: Some(0),
                time: T0 + 11_000,
                message: None,
                cpu_ms: Some(15_000),
                max_rss_kib: Some(524_288),
            },
        ],
        T0 + 11_000,
    )
    .await;
    let j = s.job(l.job_id).await.unwrap().unwrap();
    let a = &j.attempts[0];
    assert_eq!((a.cpu_ms, a.max_rss_kib), (Some(15_000), Some(524_288)));
    let e = a.efficiency.unwrap();
    assert_eq!(e.elapsed_ms, 10_000);
    assert_eq!(e.cpu_efficiency, Some(75.0));
    assert_eq!(e.memory_efficiency, Some(50.0));
}

async fn samples_are_fenced_and_read_back(s: &dyn Store) {
    worker(s, "w1", 2).await;
    worker(s, "w2", 2).await;
    let l = running(s, "w1", T0).await;
    let mut other = sample(&l, T0 + 7, 1.0);
    other.job_id += 1000;
    let got = s
        .record_samples(
            "w1",
            &[sample(&l, T0 + 5, 150.0), sample(&l, T0 + 6, 99.5), other],
        )
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].key, key(&l));
    assert_eq!(
        (got[0].name.as_str(), got[0].queue.as_str()),
        ("burn", "default")
    );
    assert_eq!(got[0].project.as_deref(), Some("p1"));
    assert!(got[0].alarms.is_empty());
    // Another worker's samples of the job are dropped; a repeat is kept once.
    assert!(
        s.record_samples("w2", &[sample(&l, T0 + 8, 3.0)])
            .await
            .unwrap()
            .is_empty()
    );
    s.record_samples("w1", &[sample(&l, T0 + 6, 99.5)])
        .await
        .unwrap();
    let read = s.samples(l.job_id, 0, 100).await.unwrap();
    assert_eq!(read.len(), 2);
    assert_eq!(read[0].time, T0 + 5);
    assert_eq!(read[0].cpu_pct, 150.0);
    assert_eq!(read[1].cpu_pct, 99.5);
    assert_eq!(read[1].rss_kib, 1006);
    assert_eq!(read[1].mem_pct, 12.5);
    assert_eq!(read[1].resolution_ms, 0);
    // The newest when limited, still oldest first; `since` cuts.
    let last = s.samples(l.job_id, 0, 1).await.unwrap();
    assert_eq!(last[0].time, T0 + 6);
    assert_eq!(s.samples(l.job_id, T0 + 6, 100).await.unwrap().len(), 1);
    // Once the attempt has ended, its samples are no longer taken.
    send(
        s,
        "w1",
        vec![Update::Finished {
            at: r(&l),
            reason: AttemptReason::Success,
            exit_code: Some(0),
            time: T0 + 20,
            message: None,
            cpu_ms: None,
            max_rss_kib: None,
        }],
        T0 + 20,
    )
    .await;
    assert!(
        s.record_samples("w1", &[sample(&l, T0 + 30, 1.0)])
            .await
            .unwrap()
            .is_empty()
    );
}

fn state(rule: &str, st: AlarmState, at: i64) -> RuleState {
    RuleState {
        rule: rule.into(),
        state: st,
        breach_since: (st == AlarmState::Alarm).then_some(at - 1000),
        changed_at: at,
        value: Some(99.5),
    }
}

fn fired(l: &Lease, at: i64) -> NewEvent {
    NewEvent {
        kind: EventType::AlarmFired,
        subject: format!("job:{}", l.job_id),
        title: "burn".into(),
        owner: None,
        project: Some("p1".into()),
        link: None,
        detail: Some("cpu_high".into()),
        time: at,
    }
}

async fn alarm_states_and_events(s: &dyn Store) {
    worker(s, "w1", 2).await;
    let l = running(s, "w1", T0).await;
    let before = s.other_events(0, 100).await.unwrap().len();
    s.save_alarms(
        &[
            (key(&l), state("cpu_high", AlarmState::Alarm, T0 + 10)),
            (key(&l), state("memory_high", AlarmState::Ok, T0 + 10)),
        ],
        &[fired(&l, T0 + 10)],
    )
    .await
    .unwrap();
    let events = s.other_events(0, 100).await.unwrap();
    assert_eq!(events.len(), before + 1);
    assert_eq!(events[before].1.event.kind, EventType::AlarmFired);
    // A running attempt's alarm does not need clearing.
    assert!(s.ended_alarms().await.unwrap().is_empty());
    // Samples bring the stored states back.
    let got = s
        .record_samples("w1", &[sample(&l, T0 + 11, 99.0)])
        .await
        .unwrap();
    assert_eq!(got[0].alarms.len(), 2);
    assert_eq!(
        got[0].alarms[0],
        state("cpu_high", AlarmState::Alarm, T0 + 10)
    );
    // Replacing a state keeps one row per rule.
    s.save_alarms(
        &[(key(&l), state("memory_high", AlarmState::Alarm, T0 + 12))],
        &[],
    )
    .await
    .unwrap();
    let all = s.alarms(l.job_id).await.unwrap();
    assert_eq!(all.len(), 2);
    assert!(
        all.iter()
            .all(|(a, st)| *a == l.attempt && st.state == AlarmState::Alarm)
    );
    send(
        s,
        "w1",
        vec![Update::Finished {
            at: r(&l),
            reason: AttemptReason::Success,
            exit_code: Some(0),
            time: T0 + 20,
            message: None,
            cpu_ms: None,
            max_rss_kib: None,
        }],
        T0 + 20,
    )
    .await;
    let ended = s.ended_alarms().await.unwrap();
    assert_eq!(ended.len(), 2);
    assert_eq!(ended[0].0.key, key(&l));
    assert_eq!(ended[0].0.name, "burn");
    assert_eq!(ended[0].1.rule, "cpu_high");
    let cleared: Vec<_> = ended
        .iter()
        .map(|(a, st)| {
            (
                a.key,
                RuleState {
                    state: AlarmState::Ok,
                    breach_since: None,
                    changed_at: T0 + 21,
                    ..st.clone()
                },
            )
        })
        .collect();
    s.save_alarms(&cleared, &[]).await.unwrap();
    assert!(s.ended_alarms().await.unwrap().is_empty());
    assert!(
        s.alarms(l.job_id)
            .await
            .unwrap()
            .iter()
            .all(|(_, st)| st.state == AlarmState::Ok)
    );
}

async fn samples_are_downsampled_as_they_age(s: &dyn Store) {
    worker(s, "w1", 2).await;
    let l = running(s, "w1", T0).await;
    let minute = (T0 / 60_000 + 1) * 60_000;
    // Three samples in one minute, two in the next, one in the third.
    let batch: Vec<TaskSample> = [0, 10_000, 20_000, 60_000, 70_000, 125_000]
        .iter()
        .enumerate()
        .map(|(i, dt)| {
            let mut x = sample(&l, minute + dt, 10.0 * (i as f64 + 1.0));
            x.rss_kib = 100 * (i as u64 + 1);
            x.disk_bytes = Some(5);
            x
        })
        .collect();
    s.record_samples("w1", &batch).await.unwrap();
    // Minutes before the third are aggregated (a cut inside a minute
    // leaves that minute raw); nothing is old enough to drop.
    let gone = s.prune_samples(minute + 130_000, 0).await.unwrap();
    assert_eq!(gone, 5);
    let read = s.samples(l.job_id, 0, 100).await.unwrap();
    assert_eq!(read.len(), 3, "{read:?}");
    assert_eq!(
        (
            read[0].time,
            read[0].resolution_ms,
            read[0].cpu_pct,
            read[0].rss_kib
        ),
        (minute, 60_000, 20.0, 300)
    );
    assert_eq!(read[0].disk_bytes, Some(5));
    assert_eq!((read[1].time, read[1].cpu_pct), (minute + 60_000, 45.0));
    assert_eq!((read[2].resolution_ms, read[2].cpu_pct), (0, 60.0));
    // Pruning again aggregates nothing twice; then everything ages out.
    assert_eq!(s.prune_samples(minute + 130_000, 0).await.unwrap(), 0);
    s.prune_samples(minute + 130_000, minute + 200_000)
        .await
        .unwrap();
    assert!(s.samples(l.job_id, 0, 100).await.unwrap().is_empty());
}
