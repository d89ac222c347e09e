use super::*;
use crate::compute::{CapacityType, ProviderKind};
use proptest::prelude::*;

const NOW: i64 = 1_000_000_000;

fn shape(name: &str, vcpus: u32, mem: u64, gpus: u32, price: f64) -> Shape {
    Shape {
        name: name.into(),
        vcpus,
        mem_mib: mem,
        gpus,
        price_per_hour: price,
    }
}

fn env(name: &str, shapes: Vec<Shape>, min: u32, max: u32, s: AllocationStrategy) -> EnvSnapshot {
    EnvSnapshot {
        spec: ComputeEnvSpec {
            name: name.into(),
            provider: ProviderKind::Slurm,
            capacity_type: CapacityType::OnDemand,
            shapes,
            min_vcpus: min,
            max_vcpus: max,
            allocation_strategy: s,
            idle_timeout_secs: 60,
            enabled: true,
            prefetch: 0,
            work_dir: None,
            program: None,
            slurm: None,
        },
        instances: vec![],
        capacity_errors: BTreeMap::new(),
        available: BTreeMap::new(),
        paused: false,
    }
}

fn res(cpus: u32, mem: u64) -> Resources {
    Resources {
        cpus,
        mem_mib: mem,
        gpus: 0,
    }
}

fn demand(queue: &str, cpus: u32, mem: u64, count: u64) -> DemandBucket {
    DemandBucket {
        queue: queue.into(),
        resources: res(cpus, mem),
        count,
    }
}

fn route(name: &str, priority: i64, envs: &[&str]) -> QueueRoute {
    QueueRoute {
        name: name.into(),
        priority,
        envs: envs.iter().map(|s| s.to_string()).collect(),
    }
}

fn input(queues: Vec<QueueRoute>, demand: Vec<DemandBucket>, envs: Vec<EnvSnapshot>) -> ScaleInput {
    ScaleInput {
        now: NOW,
        queues,
        demand,
        envs,
        capacity_error_ttl_ms: DEFAULT_CAPACITY_ERROR_TTL_MS,
        stopping: false,
    }
}

fn launched(p: &Plan, env: &str, shape: &str) -> u32 {
    p.launches
        .iter()
        .filter(|l| l.env == env && l.shape == shape)
        .map(|l| l.count)
        .sum()
}

fn live(id: &str, cpus: u32, free: u32, idle_since: Option<i64>) -> Instance {
    Instance {
        id: id.into(),
        shape: Some("c2".into()),
        capacity: Capacity {
            cpus,
            mem_mib: 4096,
            gpus: 0,
        },
        state: InstanceState::Live {
            free: Capacity {
                cpus: free,
                mem_mib: 4096 * u64::from(free) / u64::from(cpus.max(1)),
                gpus: 0,
            },
            idle_since,
        },
        retirable: true,
    }
}

#[test]
fn launches_enough_workers_packing_jobs() {
    let e = env(
        "a",
        vec![shape("c2", 2, 4096, 0, 0.1)],
        0,
        16,
        AllocationStrategy::BestFit,
    );
    let p = plan(&input(
        vec![route("q", 0, &["a"])],
        vec![demand("q", 1, 1000, 5)],
        vec![e],
    ));
    assert_eq!(launched(&p, "a", "c2"), 3, "{p:?}");
    assert!(p.retire.is_empty() && p.unplaceable.is_empty());
}

#[test]
fn a_stopping_server_launches_and_retires_nothing() {
    let mut idle = env(
        "a",
        vec![shape("c2", 2, 4096, 0, 0.1)],
        0,
        16,
        AllocationStrategy::BestFit,
    );
    idle.instances = vec![live("i1", 2, 2, Some(NOW - 3_600_000))];
    let below_min = env(
        "b",
        vec![shape("c2", 2, 4096, 0, 0.1)],
        4,
        16,
        AllocationStrategy::BestFit,
    );
    let mut i = input(
        vec![route("q", 0, &["b"])],
        vec![demand("q", 1, 1000, 50)],
        vec![idle, below_min],
    );
    let running = plan(&i);
    assert!(launched(&running, "b", "c2") > 0, "{running:?}");
    assert_eq!(running.retire.len(), 1, "{running:?}");
    i.stopping = true;
    let p = plan(&i);
    assert!(
        p.launches.is_empty(),
        "demand and min_vcpus launch nothing: {p:?}"
    );
    assert!(p.retire.is_empty(), "{p:?}");
}

#[test]
fn spare_capacity_is_used_first() {
    let mut e = env(
        "a",
        vec![shape("c2", 2, 4096, 0, 0.1)],
        0,
        16,
        AllocationStrategy::BestFit,
    );
    e.instances = vec![
        live("w1", 2, 1, None),
        Instance {
            id: "p1".into(),
            shape: Some("c2".into()),
            capacity: Capacity {
                cpus: 2,
                mem_mib: 4096,
                gpus: 0,
            },
            state: InstanceState::Starting { since: Some(NOW) },
            retirable: true,
        },
    ];
    let p = plan(&input(
        vec![route("q", 0, &["a"])],
        vec![demand("q", 1, 100, 3)],
        vec![e],
    ));
    assert!(p.launches.is_empty(), "{p:?}");
    assert!(p.retire.is_empty(), "a starting worker with work stays");
}

#[test]
fn never_launches_for_jobs_no_shape_fits() {
    let e = env(
        "a",
        vec![shape("c2", 2, 4096, 0, 0.1)],
        0,
        16,
        AllocationStrategy::BestFitProgressive,
    );
    let mut gpu = demand("q", 1, 100, 4);
    gpu.resources.gpus = 1;
    let p = plan(&input(
        vec![route("q", 0, &["a"])],
        vec![demand("q", 4, 100, 2), gpu, demand("q", 1, 9000, 1)],
        vec![e],
    ));
    assert!(p.launches.is_empty(), "{p:?}");
    let total: u64 = p.unplaceable.iter().map(|u| u.count).sum();
    assert_eq!(total, 7);
}

#[test]
fn fills_first_environment_then_spills() {
    let a = env(
        "od",
        vec![shape("c2", 2, 4096, 0, 1.0)],
        0,
        4,
        AllocationStrategy::BestFit,
    );
    let b = env(
        "spot",
        vec![shape("c2", 2, 4096, 0, 0.3)],
        0,
        100,
        AllocationStrategy::BestFit,
    );
    let p = plan(&input(
        vec![route("q", 0, &["od", "spot"])],
        vec![demand("q", 2, 100, 5)],
        vec![a, b],
    ));
    assert_eq!(launched(&p, "od", "c2"), 2);
    assert_eq!(launched(&p, "spot", "c2"), 3);
}

#[test]
fn higher_priority_queues_are_served_first() {
    let a = env(
        "a",
        vec![shape("c1", 1, 1024, 0, 0.1)],
        0,
        3,
        AllocationStrategy::BestFit,
    );
    let p = plan(&input(
        vec![route("low", 1, &["a"]), route("high", 10, &["a"])],
        vec![demand("low", 1, 100, 3), demand("high", 1, 100, 2)],
        vec![a],
    ));
    assert_eq!(launched(&p, "a", "c1"), 3);
    // With one slot taken by a live worker's job from `low`, `high` still
    // gets the remaining capacity first: nothing for low is left over.
    let mut a = env(
        "a",
        vec![shape("c1", 1, 1024, 0, 0.1)],
        0,
        2,
        AllocationStrategy::BestFit,
    );
    a.instances = vec![];
    let p = plan(&input(
        vec![route("low", 1, &["a"]), route("high", 10, &["a"])],
        vec![demand("low", 1, 100, 5), demand("high", 1, 100, 2)],
        vec![a],
    ));
    assert_eq!(launched(&p, "a", "c1"), 2, "only high's two jobs fit");
}

#[test]
fn best_fit_picks_cheapest_and_waits_when_it_cannot_be_had() {
    let shapes = vec![
        shape("big", 8, 32768, 0, 0.8),
        shape("small", 2, 4096, 0, 0.2),
        shape("mid", 4, 8192, 0, 0.4),
    ];
    let mut e = env("a", shapes, 0, 64, AllocationStrategy::BestFit);
    let i = |e: &EnvSnapshot| {
        input(
            vec![route("q", 0, &["a"])],
            vec![demand("q", 2, 100, 1)],
            vec![e.clone()],
        )
    };
    let p = plan(&i(&e));
    assert_eq!(launched(&p, "a", "small"), 1);
    e.capacity_errors.insert("small".into(), NOW - 1000);
    let p = plan(&i(&e));
    assert!(p.launches.is_empty(), "{p:?}");
    assert_eq!(p.waiting, vec![("a".to_string(), "small".to_string())]);
    // An old error no longer counts.
    e.capacity_errors
        .insert("small".into(), NOW - DEFAULT_CAPACITY_ERROR_TTL_MS);
    assert_eq!(launched(&plan(&i(&e)), "a", "small"), 1);
}

#[test]
fn progressive_moves_to_the_next_best_shape() {
    let shapes = vec![
        shape("small", 2, 4096, 0, 0.2),
        shape("mid", 4, 8192, 0, 0.4),
        shape("big", 8, 32768, 0, 0.8),
    ];
    let mut e = env("a", shapes, 0, 64, AllocationStrategy::BestFitProgressive);
    e.capacity_errors.insert("small".into(), NOW - 10);
    let p = plan(&input(
        vec![route("q", 0, &["a"])],
        vec![demand("q", 2, 100, 1)],
        vec![e.clone()],
    ));
    assert_eq!(launched(&p, "a", "mid"), 1, "{p:?}");
    // A stuck pilot makes its shape unavailable too, and is retired.
    let mut e2 = env(
        "a",
        e.spec.shapes.clone(),
        0,
        64,
        AllocationStrategy::BestFitProgressive,
    );
    e2.instances.push(Instance {
        id: "9".into(),
        shape: Some("small".into()),
        capacity: e.spec.shapes[0].capacity(),
        state: InstanceState::Stuck,
        retirable: true,
    });
    let p = plan(&input(
        vec![route("q", 0, &["a"])],
        vec![demand("q", 2, 100, 1)],
        vec![e2],
    ));
    assert_eq!(launched(&p, "a", "mid"), 1, "{p:?}");
    assert_eq!(p.retire[0].reason, RetireReason::Stuck);
    // Every shape unavailable: spill to the next CE.
    let mut all = e.clone();
    for s in ["small", "mid", "big"] {
        all.capacity_errors.insert(s.into(), NOW);
    }
    let other = env(
        "b",
        vec![shape("x", 2, 4096, 0, 9.0)],
        0,
        8,
        AllocationStrategy::BestFit,
    );
    let p = plan(&input(
        vec![route("q", 0, &["a", "b"])],
        vec![demand("q", 2, 100, 1)],
        vec![all, other],
    ));
    assert_eq!(launched(&p, "b", "x"), 1);
}

#[test]
fn progressive_may_pass_max_by_one_instance_best_fit_never() {
    let shapes = vec![shape("c4", 4, 8192, 0, 0.1)];
    let mut e = env(
        "a",
        shapes.clone(),
        0,
        6,
        AllocationStrategy::BestFitProgressive,
    );
    let p = plan(&input(
        vec![route("q", 0, &["a"])],
        vec![demand("q", 4, 100, 5)],
        vec![e.clone()],
    ));
    assert_eq!(launched(&p, "a", "c4"), 2, "4 < 6, so one more: 8 vCPUs");
    e.spec.allocation_strategy = AllocationStrategy::BestFit;
    let p = plan(&input(
        vec![route("q", 0, &["a"])],
        vec![demand("q", 4, 100, 5)],
        vec![e],
    ));
    assert_eq!(launched(&p, "a", "c4"), 1);
}

#[test]
fn spot_capacity_optimized_prefers_the_most_available_shape() {
    let shapes = vec![
        shape("cheap", 2, 4096, 0, 0.1),
        shape("roomy", 2, 4096, 0, 0.2),
        shape("big", 4, 8192, 0, 0.3),
    ];
    let mut e = env(
        "s",
        shapes,
        0,
        64,
        AllocationStrategy::SpotCapacityOptimized,
    );
    e.spec.capacity_type = CapacityType::Spot;
    e.available.insert("cheap".into(), 1);
    e.available.insert("roomy".into(), 40);
    e.available.insert("big".into(), 10);
    let i = |e: &EnvSnapshot| {
        input(
            vec![route("q", 0, &["s"])],
            vec![demand("q", 2, 100, 1)],
            vec![e.clone()],
        )
    };
    assert_eq!(launched(&plan(&i(&e)), "s", "roomy"), 1);
    e.capacity_errors.insert("roomy".into(), NOW);
    assert_eq!(launched(&plan(&i(&e)), "s", "big"), 1);
    // Unknown availability everywhere: the cheapest.
    e.available.clear();
    e.capacity_errors.clear();
    assert_eq!(launched(&plan(&i(&e)), "s", "cheap"), 1);
}

#[test]
fn scales_to_zero_and_honours_min_vcpus() {
    let shapes = vec![shape("c2", 2, 4096, 0, 0.1)];
    let mut e = env("a", shapes.clone(), 0, 8, AllocationStrategy::BestFit);
    e.instances = vec![
        live("old", 2, 2, Some(NOW - 61_000)),
        live("new", 2, 2, Some(NOW - 1_000)),
        live("busy", 2, 0, None),
        Instance {
            id: "pending".into(),
            shape: Some("c2".into()),
            capacity: shapes[0].capacity(),
            state: InstanceState::Starting {
                since: Some(NOW - 120_000),
            },
            retirable: true,
        },
    ];
    let p = plan(&input(vec![], vec![], vec![e.clone()]));
    let ids: Vec<&str> = p.retire.iter().map(|r| r.instance.as_str()).collect();
    assert_eq!(ids, vec!["pending", "old"], "{p:?}");
    assert!(p.launches.is_empty());
    // min_vcpus keeps enough of them, and launches up to it.
    e.spec.min_vcpus = 6;
    let p = plan(&input(vec![], vec![], vec![e.clone()]));
    assert_eq!(p.retire.len(), 1, "{p:?}");
    let empty = env("b", shapes, 5, 8, AllocationStrategy::BestFit);
    let p = plan(&input(vec![], vec![], vec![empty]));
    assert_eq!(launched(&p, "b", "c2"), 3);
    assert!(
        p.launches
            .iter()
            .all(|l| l.reason == LaunchReason::MinVcpus)
    );
}

#[test]
fn paused_and_disabled_environments_launch_nothing() {
    let mut e = env(
        "a",
        vec![shape("c2", 2, 4096, 0, 0.1)],
        2,
        8,
        AllocationStrategy::BestFit,
    );
    e.paused = true;
    let p = plan(&input(
        vec![route("q", 0, &["a"])],
        vec![demand("q", 1, 1, 3)],
        vec![e.clone()],
    ));
    assert!(p.launches.is_empty());
    e.paused = false;
    e.spec.enabled = false;
    let p = plan(&input(
        vec![route("q", 0, &["a"])],
        vec![demand("q", 1, 1, 3)],
        vec![e],
    ));
    assert!(p.launches.is_empty());
}

#[test]
fn workers_it_does_not_own_are_counted_but_not_retired() {
    let mut e = env(
        "a",
        vec![shape("c2", 2, 4096, 0, 0.1)],
        0,
        4,
        AllocationStrategy::BestFit,
    );
    let mut w = live("w-by-hand", 2, 2, Some(NOW - 3_600_000));
    w.retirable = false;
    e.instances = vec![w];
    let p = plan(&input(
        vec![route("q", 0, &["a"])],
        vec![demand("q", 2, 100, 3)],
        vec![e],
    ));
    assert_eq!(launched(&p, "a", "c2"), 1, "4 - 2 vCPUs left");
    assert!(p.retire.is_empty());
}

// ----- properties -----

fn arb_strategy() -> impl Strategy<Value = AllocationStrategy> {
    prop_oneof![
        Just(AllocationStrategy::BestFit),
        Just(AllocationStrategy::BestFitProgressive),
        Just(AllocationStrategy::SpotCapacityOptimized),
    ]
}

fn arb_env(name: &'static str) -> impl Strategy<Value = EnvSnapshot> {
    (
        proptest::collection::vec((1u32..9, 1u64..16, 0u32..2, 0u32..100), 1..4),
        0u32..12,
        0u32..40,
        arb_strategy(),
        proptest::collection::vec((0usize..4, 0u8..4, 0u32..9, 0i64..200), 0..6),
        proptest::collection::vec((0usize..4, 0i64..120), 0..3),
        any::<bool>(),
    )
        .prop_map(
            move |(shapes, min, extra, strategy, insts, errors, paused)| {
                let shapes: Vec<Shape> = shapes
                    .into_iter()
                    .enumerate()
                    .map(|(i, (c, m, g, p))| {
                        shape(&format!("s{i}"), c, m * 512, g, f64::from(p) / 10.0)
                    })
                    .collect();
                let max = min + extra;
                let mut e = env(name, shapes, min, max, strategy);
                e.paused = paused;
                for (k, (si, kind, used, age)) in insts.into_iter().enumerate() {
                    let s = &e.spec.shapes[si % e.spec.shapes.len()];
                    let cap = s.capacity();
                    let state = match kind {
                        0 => InstanceState::Starting {
                            since: Some(NOW - age * 1000),
                        },
                        1 => InstanceState::Stuck,
                        _ => {
                            let used = used.min(cap.cpus);
                            InstanceState::Live {
                                free: Capacity {
                                    cpus: cap.cpus - used,
                                    mem_mib: cap.mem_mib,
                                    gpus: cap.gpus,
                                },
                                idle_since: (used == 0).then_some(NOW - age * 1000),
                            }
                        }
                    };
                    e.instances.push(Instance {
                        id: format!("{name}-{k}"),
                        shape: Some(s.name.clone()),
                        capacity: cap,
                        state,
                        retirable: kind != 3,
                    });
                }
                for (si, age) in errors {
                    let n = e.spec.shapes[si % e.spec.shapes.len()].name.clone();
                    e.capacity_errors.insert(n, NOW - age * 1000);
                }
                for (i, s) in e.spec.shapes.iter().enumerate() {
                    e.available.insert(s.name.clone(), (i as u64 * 7) % 5);
                }
                e
            },
        )
}

fn arb_demand() -> impl Strategy<Value = Vec<DemandBucket>> {
    proptest::collection::vec((0usize..3, 1u32..10, 1u64..10, 0u32..2, 1u64..20), 0..6).prop_map(
        |v| {
            v.into_iter()
                .map(|(q, c, m, g, n)| DemandBucket {
                    queue: ["q0", "q1", "q2"][q].into(),
                    resources: Resources {
                        cpus: c,
                        mem_mib: m * 400,
                        gpus: g,
                    },
                    count: n,
                })
                .collect()
        },
    )
}

fn vcpus_of(e: &EnvSnapshot) -> u64 {
    e.instances
        .iter()
        .filter(|i| i.state != InstanceState::Stuck)
        .map(|i| u64::from(i.capacity.cpus))
        .sum()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn plans_respect_limits(
        a in arb_env("a"), b in arb_env("b"), d in arb_demand(),
        p0 in 0i64..3, p1 in 0i64..3,
    ) {
        let queues = vec![
            route("q0", p0, &["a", "b"]),
            route("q1", p1, &["b"]),
            route("q2", 0, &["b", "a"]),
        ];
        let envs = vec![a, b];
        let input = input(queues.clone(), d.clone(), envs.clone());
        let p = plan(&input);
        for e in &envs {
            let spec = &e.spec;
            let before = vcpus_of(e);
            let mine: Vec<&Launch> = p.launches.iter().filter(|l| l.env == spec.name).collect();
            let added: u64 = mine.iter()
                .map(|l| u64::from(spec.shape(&l.shape).unwrap().vcpus) * u64::from(l.count))
                .sum();
            let biggest = spec.shapes.iter().map(|s| u64::from(s.vcpus)).max().unwrap();
            let max = u64::from(spec.max_vcpus);
            if !mine.is_empty() {
                prop_assert!(spec.enabled && !e.paused);
                if spec.allocation_strategy.may_overshoot() {
                    // At most one instance past max_vcpus.
                    prop_assert!(before + added < max + biggest, "{before}+{added} vs {max}");
                } else {
                    prop_assert!(before + added <= max, "{before}+{added} > {max}");
                }
            }
            // Every shape launched for demand fits some job routed here;
            // launches for min_vcpus only happen below min_vcpus.
            for l in &mine {
                let cap = spec.shape(&l.shape).unwrap().capacity();
                match l.reason {
                    LaunchReason::Demand => {
                        let wanted = d.iter().any(|b| {
                            cap.fits(&b.resources)
                                && queues.iter().any(|q| q.name == b.queue && q.envs.contains(&spec.name))
                        });
                        prop_assert!(wanted, "launched {} for no job", l.shape);
                    }
                    LaunchReason::MinVcpus => prop_assert!(before < u64::from(spec.min_vcpus)),
                }
                prop_assert!(l.count > 0);
            }
            // Retirement never takes a CE below min_vcpus (stuck pilots
            // excepted: they never counted) and never touches busy or
            // foreign workers.
            let retired: u64 = p.retire.iter()
                .filter(|r| r.env == spec.name && r.reason != RetireReason::Stuck)
                .map(|r| {
                    let inst = e.instances.iter().find(|i| i.id == r.instance).unwrap();
                    u64::from(inst.capacity.cpus)
                })
                .sum();
            if retired > 0 {
                prop_assert!(before + added - retired >= u64::from(spec.min_vcpus));
            }
            for r in p.retire.iter().filter(|r| r.env == spec.name) {
                let inst = e.instances.iter().find(|i| i.id == r.instance).unwrap();
                prop_assert!(inst.retirable);
                if let InstanceState::Live { idle_since, .. } = inst.state {
                    prop_assert!(idle_since.is_some(), "retired a busy worker");
                }
            }
        }
    }

    #[test]
    fn no_demand_no_launches_above_min(a in arb_env("a"), b in arb_env("b")) {
        let envs = vec![a, b];
        let p = plan(&input(vec![], vec![], envs.clone()));
        for l in &p.launches {
            prop_assert_eq!(l.reason, LaunchReason::MinVcpus);
        }
        for e in &envs {
            if e.spec.min_vcpus == 0 {
                prop_assert!(p.launches.iter().all(|l| l.env != e.spec.name));
                // Scale to zero: every retirable worker idle (or unneeded)
                // for the timeout goes.
                for i in &e.instances {
                    let old = match i.state {
                        InstanceState::Live { idle_since: Some(t), .. } => NOW - t >= 60_000,
                        InstanceState::Starting { since: Some(t) } => NOW - t >= 60_000 || !e.spec.enabled,
                        InstanceState::Stuck => true,
                        _ => false,
                    };
                    if old && i.retirable {
                        prop_assert!(p.retire.iter().any(|r| r.instance == i.id), "{} kept", i.id);
                    }
                }
            }
        }
    }

    #[test]
    fn demand_alone_never_launches_for_unfittable_jobs(a in arb_env("a"), cpus in 1u32..40) {
        let mut a = a;
        a.instances.clear();
        a.spec.min_vcpus = 0;
        let biggest = a.spec.shapes.iter().map(|s| s.vcpus).max().unwrap();
        let r = Resources { cpus: biggest + cpus, mem_mib: 1, gpus: 0 };
        let p = plan(&input(
            vec![route("q0", 0, &["a"])],
            vec![DemandBucket { queue: "q0".into(), resources: r, count: 3 }],
            vec![a],
        ));
        prop_assert!(p.launches.is_empty());
        prop_assert_eq!(p.unplaceable.len(), 1);
        prop_assert_eq!(p.unplaceable[0].count, 3);
    }
}
