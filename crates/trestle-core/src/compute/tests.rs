use super::*;

fn ce(json: &str) -> Result<ComputeEnvSpec> {
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    from_value::<ComputeEnvRequest>(v)?.validate("ce1")
}

fn field_of(r: Result<ComputeEnvSpec>) -> String {
    r.unwrap_err().field.unwrap_or_default()
}

#[test]
fn a_full_slurm_environment() {
    let s = ce(r#"{
        "provider": "slurm", "capacity_type": "spot",
        "shapes": [{"name": "small", "vcpus": 2, "memory": "4G", "price_per_hour": 0.1},
                   {"name": "gpu", "vcpus": 8, "memory": 65536, "gpus": 1, "price_per_hour": 2.5}],
        "min_vcpus": 2, "max_vcpus": 64,
        "allocation_strategy": "spot-capacity-optimized", "idle_timeout": "2m",
        "slurm": {"partition": "preempt", "account": "phys", "time_limit": "4h",
                  "extra_args": ["--constraint=ib"], "log_dir": "/shared/pilots"}
    }"#)
    .unwrap();
    assert_eq!(s.provider, ProviderKind::Slurm);
    assert_eq!(s.capacity_type, CapacityType::Spot);
    assert_eq!(s.shapes[0].mem_mib, 4096);
    assert_eq!(s.shapes[1].gpus, 1);
    assert_eq!(s.idle_timeout_secs, 120);
    let sl = s.slurm.as_ref().unwrap();
    assert_eq!(sl.time_limit_secs, 4 * 3600);
    assert_eq!(sl.partition.as_deref(), Some("preempt"));
    assert!(s.enabled);
    // The stored form round-trips.
    let back: ComputeEnvSpec = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
    assert_eq!(back, s);
}

#[test]
fn defaults() {
    let s =
        ce(r#"{"provider": "local", "shapes": [{"vcpus": 1, "memory": "1G"}], "max_vcpus": 4}"#)
            .unwrap();
    assert_eq!(s.shapes[0].name, "s0");
    assert_eq!(s.capacity_type, CapacityType::OnDemand);
    assert_eq!(s.allocation_strategy, AllocationStrategy::BestFit);
    assert_eq!(s.idle_timeout_secs, DEFAULT_IDLE_TIMEOUT_SECS);
    assert_eq!(s.min_vcpus, 0);
    assert!(s.slurm.is_none());
    let s = ce(r#"{"provider": "slurm", "shapes": [{"vcpus": 1, "memory": 64}], "max_vcpus": 1}"#)
        .unwrap();
    assert_eq!(
        s.slurm.unwrap().time_limit_secs,
        DEFAULT_SLURM_TIME_LIMIT_SECS
    );
}

#[test]
fn every_rejection_names_its_field() {
    let base = r#""provider": "local", "shapes": [{"vcpus": 1, "memory": "1G"}], "max_vcpus": 4"#;
    let cases = [
        (
            r#"{"shapes": [{"vcpus": 1, "memory": "1G"}], "max_vcpus": 4}"#,
            "provider",
        ),
        (
            r#"{"provider": "k8s", "shapes": [{"vcpus": 1, "memory": "1G"}], "max_vcpus": 4}"#,
            "provider",
        ),
        (r#"{"provider": "local", "max_vcpus": 4}"#, "shapes"),
        (
            r#"{"provider": "local", "shapes": [], "max_vcpus": 4}"#,
            "shapes",
        ),
        (
            r#"{"provider": "local", "shapes": [{"vcpus": 1, "memory": "1G"}]}"#,
            "max_vcpus",
        ),
        (
            r#"{"provider": "local", "shapes": [{"vcpus": 0, "memory": "1G"}], "max_vcpus": 4}"#,
            "shapes[0].vcpus",
        ),
        (
            r#"{"provider": "local", "shapes": [{"vcpus": 1, "memory": "lots"}], "max_vcpus": 4}"#,
            "shapes[0].memory",
        ),
        (
            r#"{"provider": "local", "shapes": [{"vcpus": 1}], "max_vcpus": 4}"#,
            "shapes[0].memory",
        ),
        (
            r#"{"provider": "local", "shapes": [{"vcpus": 1, "memory": 1, "price_per_hour": -1}], "max_vcpus": 4}"#,
            "shapes[0].price_per_hour",
        ),
        (
            r#"{"provider": "local", "shapes": [{"name": "a", "vcpus": 1, "memory": 1}, {"name": "a", "vcpus": 2, "memory": 1}], "max_vcpus": 4}"#,
            "shapes[1].name",
        ),
        (
            r#"{"provider": "local", "shapes": [{"name": "a b", "vcpus": 1, "memory": 1}], "max_vcpus": 4}"#,
            "shapes[0].name",
        ),
        (
            r#"{"provider": "local", "shapes": [{"vcpus": 1, "memory": 1}], "min_vcpus": 8, "max_vcpus": 4}"#,
            "max_vcpus",
        ),
        (
            r#"{"provider": "local", "shapes": [{"vcpus": 8, "memory": 1}], "max_vcpus": 4}"#,
            "max_vcpus",
        ),
        (
            r#"{"provider": "local", "shapes": [{"vcpus": 1, "memory": 1}], "max_vcpus": 4, "allocation_strategy": "cheapest"}"#,
            "allocation_strategy",
        ),
        (
            r#"{"provider": "local", "shapes": [{"vcpus": 1, "memory": 1}], "max_vcpus": 4, "allocation_strategy": "spot-capacity-optimized"}"#,
            "allocation_strategy",
        ),
        (
            r#"{"provider": "local", "shapes": [{"vcpus": 1, "memory": 1}], "max_vcpus": 4, "capacity_type": "reserved"}"#,
            "capacity_type",
        ),
        (
            r#"{"provider": "local", "shapes": [{"vcpus": 1, "memory": 1}], "max_vcpus": 4, "idle_timeout": "soon"}"#,
            "idle_timeout",
        ),
        (
            r#"{"provider": "local", "shapes": [{"vcpus": 1, "memory": 1}], "max_vcpus": 4, "idle_timeout": 0}"#,
            "idle_timeout",
        ),
        (
            r#"{"provider": "local", "shapes": [{"vcpus": 1, "memory": 1}], "max_vcpus": 4, "slurm": {}}"#,
            "slurm",
        ),
        (
            r#"{"provider": "slurm", "shapes": [{"vcpus": 1, "memory": 1}], "max_vcpus": 4, "slurm": {"partition": "a b"}}"#,
            "slurm.partition",
        ),
        (
            r#"{"provider": "slurm", "shapes": [{"vcpus": 1, "memory": 1}], "max_vcpus": 4, "slurm": {"extra_args": ["constraint=ib"]}}"#,
            "slurm.extra_args[0]",
        ),
        (
            r#"{"provider": "slurm", "shapes": [{"vcpus": 1, "memory": 1}], "max_vcpus": 4, "slurm": {"extra_args": ["--export=ALL"]}}"#,
            "slurm.extra_args[0]",
        ),
        (
            r#"{"provider": "slurm", "shapes": [{"vcpus": 1, "memory": 1}], "max_vcpus": 4, "slurm": {"time_limit": "10s"}}"#,
            "slurm.time_limit",
        ),
        (
            r#"{"provider": "local", "shapes": [{"vcpus": 1, "memory": 1}], "max_vcpus": 4, "work_dir": ""}"#,
            "work_dir",
        ),
        (
            r#"{"name": "other", "provider": "local", "shapes": [{"vcpus": 1, "memory": 1}], "max_vcpus": 4}"#,
            "name",
        ),
    ];
    for (json, field) in cases {
        assert_eq!(field_of(ce(json)), field, "{json}");
    }
    // Unknown keys are named too (by the parser).
    let unknown = format!("{{{base}, \"max_cpus\": 3}}");
    let e = ce(&unknown).unwrap_err();
    assert!(e.message.contains("max_cpus"), "{e:?}");
    let typo = r#"{"provider": "local", "shapes": [{"vcpu": 1, "memory": 1}], "max_vcpus": 4}"#;
    assert_eq!(field_of(ce(typo)), "shapes[0].vcpu");
}

#[test]
fn queues() {
    let q = QueueRequest {
        priority: Some(10),
        compute_environments: Some(vec!["a".into(), "b".into()]),
        ..Default::default()
    }
    .validate("high")
    .unwrap();
    assert_eq!(q.priority, 10);
    assert!(check_queue_envs(&q, &["a", "b", "c"]).is_ok());
    let e = check_queue_envs(&q, &["a"]).unwrap_err();
    assert_eq!(e.field.as_deref(), Some("compute_environments[1]"));
    let bad = |r: QueueRequest, name: &str| r.validate(name).unwrap_err().field.unwrap();
    assert_eq!(
        bad(
            QueueRequest {
                priority: Some(-1),
                ..Default::default()
            },
            "q"
        ),
        "priority"
    );
    assert_eq!(
        bad(
            QueueRequest {
                compute_environments: Some(vec!["a".into(), "a".into()]),
                ..Default::default()
            },
            "q"
        ),
        "compute_environments[1]"
    );
    assert_eq!(bad(QueueRequest::default(), "bad name"), "name");
    let empty = QueueRequest::default().validate("q").unwrap();
    assert!(empty.compute_environments.is_empty());
}

#[test]
fn queue_priority_dominates_job_priority() {
    let key = |q: i64, j: i32| q * QUEUE_PRIORITY_STEP + i64::from(j);
    assert!(key(1, i32::MIN) > key(0, i32::MAX));
    assert!(key(MAX_QUEUE_PRIORITY, i32::MAX) < i64::MAX);
    assert!(key(0, 5) > key(0, 4));
}
