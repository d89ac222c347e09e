//! Cost reports: charges over the last days grouped by user, project,
//! index, compute environment, kind or day (from the daily roll-up, so a
//! report costs the same at a million records as at ten), and the cost
//! of one job, array, pipeline or workspace. Who sees what is
//! `trestle_core::identity::authz_cost`'s decision.

use crate::principal::Principal;
use crate::state::Service;
use crate::{ServiceError, ServiceResult, budgets, metering};
use trestle_core::api::cost::{CostOf, CostQuery, CostReport, CostRow, UsageView};
use trestle_core::cost::daily;
use trestle_core::identity::authz_cost::{self, CostAction, CostResource};
use trestle_store::cost::{Grouping, UsageFilter, UsageOf, UsageRecord};

/// Most days a report covers.
pub const MAX_DAYS: u32 = 366;

fn grouping(by: &str) -> ServiceResult<Grouping> {
    Ok(match by {
        "user" => Grouping::User,
        "project" => Grouping::Project,
        "index" => Grouping::Index,
        "env" => Grouping::Env,
        "kind" => Grouping::Kind,
        "day" => Grouping::Day,
        other => {
            return Err(ServiceError::bad(
                "invalid-grouping",
                "by",
                format!("`{other}` is not a grouping: user, project, index, env, kind or day"),
            ));
        }
    })
}

/// Charges over the last `days` days, as the caller may see them: admins
/// everything; others their own usage and that of the projects they
/// manage.
pub async fn report(app: &Service, p: &Principal, q: &CostQuery) -> ServiceResult<CostReport> {
    let Some(u) = p.user() else {
        return Err(ServiceError::forbidden(
            "a worker credential cannot read costs",
        ));
    };
    let by_name = q.by.clone().unwrap_or_else(|| "project".into());
    let by = grouping(&by_name)?;
    let days = q.days.unwrap_or(30);
    if days == 0 || days > MAX_DAYS {
        return Err(ServiceError::bad(
            "invalid-days",
            "days",
            format!("a report covers 1 to {MAX_DAYS} days"),
        ));
    }
    if let Some(name) = &q.user
        && name != &u.name
    {
        budgets::allow(p, CostAction::UsageRead, CostResource::All, "user").or_else(|_| {
            // Managers filter by their members' names within their projects.
            if authz_cost::visible_usage(u).is_some_and(|(_, ps)| !ps.is_empty()) {
                Ok(())
            } else {
                Err(ServiceError::not_found(format!("user `{name}`")))
            }
        })?;
    }
    let today = daily::day_of(crate::now_ms());
    let filter = UsageFilter {
        from_day: today - i64::from(days) + 1,
        to_day: today,
        by,
        per_day: q.per_day.unwrap_or(false) || by == Grouping::Day,
        project: q.project.clone(),
        user: q.user.clone(),
        index: q.index.clone(),
        visible: authz_cost::visible_usage(u),
    };
    let mut sums = app.store.usage(&filter).await?;
    if filter.per_day {
        sums.sort_by(|a, b| {
            a.day
                .cmp(&b.day)
                .then(b.charge.total_cmp(&a.charge))
                .then(a.key.cmp(&b.key))
        });
    }
    let rows: Vec<CostRow> = sums
        .iter()
        .map(|s| CostRow {
            key: if by == Grouping::Day {
                s.key
                    .parse()
                    .map(daily::date)
                    .unwrap_or_else(|_| s.key.clone())
            } else {
                s.key.clone()
            },
            day: if by == Grouping::Day {
                None
            } else {
                s.day.map(daily::date)
            },
            charge: s.charge,
            hours: s.seconds / 3600.0,
            core_hours: s.core_seconds / 3600.0,
            cpu_efficiency: (s.measured_core_seconds > 0.0)
                .then(|| (s.used_core_seconds / s.measured_core_seconds).min(1.0)),
            unused_core_hours: (s.measured_core_seconds - s.used_core_seconds).max(0.0) / 3600.0,
            records: s.records,
        })
        .collect();
    let total = rows.iter().map(|r| r.charge).sum();
    let yesterday = app
        .store
        .usage(&UsageFilter {
            from_day: today - 1,
            to_day: today - 1,
            by: Grouping::Day,
            per_day: true,
            ..filter.clone()
        })
        .await?
        .iter()
        .map(|s| s.charge)
        .sum();
    let now = crate::now_ms();
    let running = app
        .store
        .running_attempts()
        .await?
        .iter()
        .filter(|a| match &filter.visible {
            None => true,
            Some((me, ps)) => a.owner == *me || ps.contains(&a.project),
        })
        .filter(|a| q.project.as_ref().is_none_or(|p| *p == a.project))
        .filter(|a| q.user.as_ref().is_none_or(|x| *x == a.owner))
        .filter(|a| q.index.as_ref().is_none_or(|x| *x == a.index_name))
        .map(|a| metering::running_charge(a, &app.costs.settings, now))
        .sum();
    Ok(CostReport {
        unit: app.costs.settings.unit.clone(),
        by: by_name,
        from: daily::date(filter.from_day),
        to: daily::date(today),
        rows,
        total,
        yesterday,
        running,
    })
}

fn usage_view(r: &UsageRecord) -> UsageView {
    UsageView {
        kind: r.kind.as_str().into(),
        job_id: r.job_id,
        attempt: r.attempt,
        compute_env: r.compute_env.clone(),
        started_at: r.started_at,
        ended_at: r.ended_at,
        rate_per_hour: r.rate_per_hour,
        charge: r.charge,
    }
}

async fn cost(app: &Service, of: UsageOf) -> ServiceResult<CostOf> {
    let (charge, records, usage) = app.store.usage_of(of).await?;
    Ok(CostOf {
        unit: app.costs.settings.unit.clone(),
        charge,
        records,
        usage: usage.iter().map(usage_view).collect(),
    })
}

/// What job `id` cost (for an array or pipeline: its children), for
/// whoever may see the job.
pub async fn of_job(app: &Service, p: &Principal, id: i64) -> ServiceResult<CostOf> {
    let job = crate::jobs::show(app, p, id).await?;
    if job.flow.kind == trestle_core::batch::workflow::JobKind::Job {
        cost(app, UsageOf::Job(id)).await
    } else {
        cost(app, UsageOf::Group(id)).await
    }
}

/// What workspace `id` cost, for whoever may see it.
pub async fn of_workspace(app: &Service, p: &Principal, id: i64) -> ServiceResult<CostOf> {
    crate::workspaces::show(app, p, id).await?;
    cost(app, UsageOf::Workspace(id)).await
}
