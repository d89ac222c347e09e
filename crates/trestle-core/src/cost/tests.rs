use super::budget::{self, BudgetRequest, Enforcement, Mark, Period, ScopeKind};
use super::daily::{self, DAY_MS};
use super::*;
use crate::compute::{ComputeEnvRequest, ComputeEnvSpec};

fn env() -> ComputeEnvSpec {
    let req: ComputeEnvRequest = serde_json::from_value(serde_json::json!({
        "name": "cloud", "provider": "local", "max_vcpus": 64,
        "shapes": [{"name": "c2", "vcpus": 2, "memory": "4G", "price_per_hour": 0.36},
                   {"name": "c8", "vcpus": 8, "memory": "32G", "price_per_hour": 1.44},
                   {"name": "g1", "vcpus": 8, "memory": "64G", "gpus": 1, "price_per_hour": 3.6}]
    }))
    .unwrap();
    req.validate("cloud").unwrap()
}

fn res(cpus: u32, mem_mib: u64, gpus: u32) -> Resources {
    Resources {
        cpus,
        mem_mib,
        gpus,
    }
}

fn cap(cpus: u32, mem_mib: u64, gpus: u32) -> Capacity {
    Capacity {
        cpus,
        mem_mib,
        gpus,
    }
}

#[test]
fn a_worker_is_priced_by_the_shape_it_matches() {
    let s = CostSettings::default();
    let p = price_worker(Some(&env()), cap(8, 32 * 1024, 0), &s);
    assert_eq!((p.shape.as_str(), p.price_per_hour), ("c8", 1.44));
    let p = price_worker(Some(&env()), cap(8, 60_000, 1), &s);
    assert_eq!(p.shape, "g1");
    // Not a shape: the cheapest shape that holds it.
    let p = price_worker(Some(&env()), cap(1, 1024, 0), &s);
    assert_eq!(p.shape, "c2");
    // Launched by hand: the whole worker at the default price.
    let s = CostSettings {
        default_price_per_hour: 0.5,
        ..CostSettings::default()
    };
    let p = price_worker(None, cap(4, 1024, 0), &s);
    assert_eq!((p.shape.as_str(), p.price_per_hour), ("unpriced", 0.5));
    assert_eq!(p.size, cap(4, 1024, 0));
}

#[test]
fn a_task_pays_its_largest_share_of_the_shape() {
    let s = CostSettings::default();
    let c2 = price_worker(Some(&env()), cap(2, 4096, 0), &s);
    // One CPU of two: half the price.
    assert!((rate_per_hour(res(1, 100, 0), &c2, &s) - 0.18).abs() < 1e-12);
    // Most of the memory: charged by memory.
    assert!((rate_per_hour(res(1, 3072, 0), &c2, &s) - 0.27).abs() < 1e-12);
    // More than the shape (over-committed): at most the whole shape.
    assert!((rate_per_hour(res(4, 100, 0), &c2, &s) - 0.36).abs() < 1e-12);
    let g1 = price_worker(Some(&env()), cap(8, 65536, 1), &s);
    assert!((rate_per_hour(res(1, 1024, 1), &g1, &s) - 3.6).abs() < 1e-12);
}

#[test]
fn a_charge_is_exact_to_the_millisecond() {
    assert!((charge(0.36, 1_000, 1_000 + 3_600_000) - 0.36).abs() < 1e-12);
    assert!((charge(0.36, 0, 1_500) - 0.36 * 1.5 / 3600.0).abs() < 1e-15);
    assert_eq!(charge(1.0, 5, 4), 0.0);
}

#[test]
fn weights_charge_in_the_site_unit() {
    let s = CostSettings {
        unit: "SU".into(),
        weights: Some(Weights {
            cpu: 1.0,
            mem_gib: 0.25,
            gpu: 10.0,
        }),
        default_price_per_hour: 0.0,
        storage_per_gib_month: 0.0,
    };
    s.validate().unwrap();
    let p = price_worker(Some(&env()), cap(8, 65536, 1), &s);
    assert!((rate_per_hour(res(2, 4096, 1), &p, &s) - 13.0).abs() < 1e-12);
    assert!(
        CostSettings {
            unit: String::new(),
            ..CostSettings::default()
        }
        .validate()
        .is_err()
    );
}

#[test]
fn overhead_is_what_the_tasks_did_not_use() {
    let s = CostSettings::default();
    let c2 = price_worker(Some(&env()), cap(2, 4096, 0), &s);
    let hour = 3_600_000;
    assert!((overhead(&c2, &s, 0, hour, 0.18) - 0.18).abs() < 1e-12);
    assert_eq!(overhead(&c2, &s, 0, hour, 5.0), 0.0);
}

#[test]
fn days_split_at_midnight() {
    let t = 3 * DAY_MS - 1_000;
    assert_eq!(daily::split(t, t + 3_000), vec![(2, 1_000), (3, 2_000)]);
    assert_eq!(daily::split(t, t), vec![(2, 0)]);
    let parts = daily::spread(3.0, t, t + 3_000);
    assert!((parts[0].1 - 1.0).abs() < 1e-12 && (parts[1].1 - 2.0).abs() < 1e-12);
    assert_eq!(daily::date(0), "1970-01-01");
    assert_eq!(daily::date(20_454), "2026-01-01");
    assert_eq!(daily::parse_date("2024-02-29"), Some(19_782));
    assert_eq!(daily::parse_date("2023-02-29"), None);
    assert_eq!(daily::parse_date("2026-13-01"), None);
    let (a, b) = daily::month_of(daily::parse_date("2026-12-15").unwrap());
    assert_eq!(
        (daily::date(a), daily::date(b)),
        ("2026-12-01".into(), "2027-01-01".into())
    );
}

fn spec(enforcement: &str) -> budget::BudgetSpec {
    budget::validate(
        ScopeKind::Project,
        "genomics",
        &BudgetRequest {
            amount: Some(100.0),
            enforcement: Some(enforcement.into()),
            ..BudgetRequest::default()
        },
    )
    .unwrap()
}

#[test]
fn a_budget_gets_defaults_and_rejects_nonsense() {
    let b = spec("block");
    assert_eq!(b.thresholds, vec![50, 80, 90, 100]);
    assert_eq!(b.period, Period::Monthly);
    assert_eq!(b.enforcement, Enforcement::Block);
    let bad = |req: BudgetRequest, field: &str| {
        let e = budget::validate(ScopeKind::Index, "x", &req).unwrap_err();
        assert_eq!(e.field.as_deref(), Some(field), "{e:?}");
    };
    bad(BudgetRequest::default(), "amount");
    bad(
        BudgetRequest {
            amount: Some(-1.0),
            ..BudgetRequest::default()
        },
        "amount",
    );
    bad(
        BudgetRequest {
            amount: Some(1.0),
            period: Some("grant".into()),
            start: Some("2026-01-01".into()),
            ..BudgetRequest::default()
        },
        "end",
    );
    bad(
        BudgetRequest {
            amount: Some(1.0),
            enforcement: Some("stop".into()),
            ..BudgetRequest::default()
        },
        "enforcement",
    );
    bad(
        BudgetRequest {
            amount: Some(1.0),
            thresholds: Some(vec![0]),
            ..BudgetRequest::default()
        },
        "thresholds",
    );
}

#[test]
fn a_grant_has_a_window_and_a_month_is_a_month() {
    let g = budget::validate(
        ScopeKind::Project,
        "p",
        &BudgetRequest {
            amount: Some(10.0),
            period: Some("grant".into()),
            start: Some("2026-11-01".into()),
            end: Some("2026-11-30".into()),
            ..BudgetRequest::default()
        },
    )
    .unwrap();
    let nov15 = daily::parse_date("2026-11-15").unwrap() * DAY_MS;
    let (s, e) = budget::window(&g.period, nov15).unwrap();
    assert_eq!((s / DAY_MS, e / DAY_MS), (20_758, 20_788));
    assert_eq!(budget::window(&g.period, e), None);
    let (s, e) = budget::window(&Period::Monthly, nov15).unwrap();
    assert_eq!(daily::date(s / DAY_MS), "2026-11-01");
    assert_eq!(daily::date(e / DAY_MS), "2026-12-01");
}

#[test]
fn each_threshold_is_crossed_once_per_period() {
    let b = spec("alert");
    assert!(budget::crossings(&b, 49.0, None, &[]).is_empty());
    assert_eq!(
        budget::crossings(&b, 85.0, None, &[]),
        vec![Mark::Percent(50), Mark::Percent(80)]
    );
    assert_eq!(
        budget::crossings(&b, 85.0, None, &["50".into(), "80".into()]),
        vec![]
    );
    assert_eq!(
        budget::crossings(&b, 10.0, Some(120.0), &["50".into()]),
        vec![Mark::Forecast]
    );
    assert!(budget::crossings(&b, 10.0, Some(120.0), &["forecast".into()]).is_empty());
}

#[test]
fn forecasts_project_the_rate_so_far() {
    let w = (0, 30 * DAY_MS);
    assert_eq!(budget::forecast(5.0, w, 1_000), None);
    let f = budget::forecast(10.0, w, 10 * DAY_MS).unwrap();
    assert!((f - 30.0).abs() < 1e-9);
}

#[test]
fn block_and_escrow_stop_at_the_amount() {
    assert!(!budget::blocks(&spec("alert"), 500.0));
    assert!(budget::blocks(&spec("block"), 100.0));
    assert!(!budget::blocks(&spec("block"), 99.9));
    assert!(budget::blocks(&spec("escrow"), 100.0));
    let e = spec("escrow");
    assert!(budget::fits(&e, 90.0, 10.0));
    assert!(!budget::fits(&e, 90.0, 10.5));
    // 1 CPU-hour at 0.18/h, 2 attempts, plus one interruption's run.
    assert!((budget::reservation(0.18, 3600, 2) - 0.54).abs() < 1e-12);
}

#[test]
fn storage_is_charged_per_day_of_a_month() {
    let gib = 1024 * 1024 * 1024;
    assert!((storage_day(30 * gib, 0.1) - 0.1).abs() < 1e-12);
    assert_eq!(storage_day(gib, 0.0), 0.0);
}
