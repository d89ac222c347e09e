//! Every conformance check as its own test on each database: for check
//! `c` of suite `s`, `s::c::sqlite` runs it on a fresh SQLite file and
//! `s::c::postgres` on a fresh PostgreSQL database (on
//! `TRESTLE_TEST_POSTGRES`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`). One failing check no
//! longer hides the others: `cargo nextest run -p trestle-store-conformance
//! -E 'test(/::postgres$/)'` runs one database, `... tokens` one check.
//!
//! A check added to a suite's `CHECKS` must be listed here too:
//! `every_check_has_a_test` fails until it is.

use trestle_store_conformance::db::{Backend, TestDb};

/// Runs check `name` of `suite` on a fresh database.
async fn on(backend: Backend, suite: &str, name: &str) {
    let db = TestDb::new(backend, &format!("{suite}_{name}")).await;
    let s = db.shared();
    match suite {
        "queue" => trestle_store_conformance::queue::run(name, s).await,
        "identity" => trestle_store_conformance::identity::run(name, s).await,
        "workflows" => trestle_store_conformance::workflows::run(name, s).await,
        "scale" => trestle_store_conformance::scale::run(name, s).await,
        "security" => trestle_store_conformance::security::run(name, s).await,
        "external" => trestle_store_conformance::external::run(name, s).await,
        "notify" => trestle_store_conformance::notify::run(name, s).await,
        "workspaces" => trestle_store_conformance::workspaces::run(name, s).await,
        "studies" => trestle_store_conformance::studies::run(name, s).await,
        "costs" => trestle_store_conformance::costs::run(name, s).await,
        "samples" => trestle_store_conformance::samples::run(name, s).await,
        other => panic!("unknown suite `{other}`"),
    }
    db.finish().await;
}

/// `suite!(name: check, ...)` makes module `name` with, for every check, a
/// module holding a `sqlite` and a `postgres` test, and `TESTED`, the checks
/// listed.
macro_rules! suite {
    ($suite:ident: $($check:ident),+ $(,)?) => {
        mod $suite {
            /// The checks this file makes tests for.
            pub const TESTED: &[&str] = &[$(stringify!($check)),+];
            $(
                mod $check {
                    use trestle_store_conformance::db::Backend;

                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn sqlite() {
                        super::super::on(Backend::Sqlite, stringify!($suite), stringify!($check))
                            .await;
                    }

                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn postgres() {
                        super::super::on(Backend::Postgres, stringify!($suite), stringify!($check))
                            .await;
                    }
                }
            )+
        }
    };
}

suite!(queue:
    submit_get_list,
    key_conflict_is_atomic,
    lease_fits_capacity,
    reports_are_fenced,
    retries_then_fails,
    expired_lease_is_lost_and_requeued,
    cancel_semantics,
    logs_in_order,
    logs_keep_the_newest_output,
    concurrent_leases_claim_once,
    workers_and_tokens,
    counts_and_demand,
    batches_of_reports,
    task_kinds,
);

suite!(identity:
    users_projects,
    tokens,
    job_visibility,
    audit_trail,
    sessions_and_ownership,
    login_attempts_are_atomic,
);

suite!(workflows:
    events_record_every_change,
    dependencies_resolve_with_the_finish,
    after_waits_for_a_start,
    arrays_are_created_lazily,
    array_parallel_limit_and_failure,
    arrays_fail_fast_and_children_are_found,
    cancelling_a_group,
    pipelines_run_in_order,
    tick_holds_disabled_queues_and_is_a_safety_net,
);

suite!(scale:
    compute_envs_and_queues,
    queue_priority_orders_leases,
    routed_leases_and_snapshot,
    leader_leases,
);

suite!(security:
    leases_are_bound_to_their_worker,
    submits_seal_their_uploads,
    a_held_upload_delays_the_seal,
);

suite!(external:
    provisioning_manages_its_memberships,
    oidc_logins_are_taken_once,
);

suite!(notify:
    events_are_routed_by_cursor,
    targets_rules_and_subscriptions,
    deliveries_retry_die_and_revive,
);

suite!(workspaces:
    catalogue_versions_and_approval,
    lifecycle_is_compare_and_set,
    reports_and_homes_survive_lifecycle_writes,
    origin_grants,
);

suite!(studies:
    studies_grants_and_listing,
    versions_are_compare_and_set,
    quotas_count_every_version_kept,
    old_versions_are_pruned_but_not_those_in_use,
);

suite!(costs:
    ended_attempts_wait_for_the_meter_once,
    usage_is_idempotent_and_rolls_up_per_day,
    budgets_marks_and_holds,
);

suite!(samples:
    efficiency_is_stored_with_the_end,
    samples_are_fenced_and_read_back,
    alarm_states_and_events,
    samples_are_downsampled_as_they_age,
);

/// Every check of every suite has its tests here, and every test here
/// names a check (listed once).
#[test]
fn every_check_has_a_test() {
    use trestle_store_conformance as c;
    let suites: [(&str, &[&str], &[&str]); 11] = [
        ("queue", c::queue::CHECKS, queue::TESTED),
        ("identity", c::identity::CHECKS, identity::TESTED),
        ("workflows", c::workflows::CHECKS, workflows::TESTED),
        ("scale", c::scale::CHECKS, scale::TESTED),
        ("security", c::security::CHECKS, security::TESTED),
        ("external", c::external::CHECKS, external::TESTED),
        ("notify", c::notify::CHECKS, notify::TESTED),
        ("workspaces", c::workspaces::CHECKS, workspaces::TESTED),
        ("studies", c::studies::CHECKS, studies::TESTED),
        ("costs", c::costs::CHECKS, costs::TESTED),
        ("samples", c::samples::CHECKS, samples::TESTED),
    ];
    let mut total = 0;
    for (suite, checks, tested) in suites {
        for check in checks {
            assert!(
                tested.contains(check),
                "check `{check}` of suite `{suite}` has no test: add it to `suite!({suite}: ...)` \
                 in tests/conformance.rs"
            );
        }
        for t in tested {
            assert!(
                checks.contains(t),
                "tests/conformance.rs lists `{t}`, which suite `{suite}` does not have"
            );
            assert_eq!(
                tested.iter().filter(|x| *x == t).count(),
                1,
                "`{t}` is listed twice"
            );
        }
        assert_eq!(
            checks.len(),
            tested.len(),
            "suite `{suite}` lists a check twice"
        );
        total += checks.len();
    }
    // 12 queue + 5 identity + 8 workflow + 4 scale checks when the suites
    // left the library; more is fine, fewer means a check was dropped.
    assert!(total >= 29, "only {total} checks");
}
