//! `trestle audit query|queries|unused`: the audit trail (admins).

use super::client;
use crate::Conn;
use crate::output::{table, time, usage};
use anyhow::Result;
use clap::{Args, Subcommand};
use std::process::ExitCode;
use trestle_client::Method;
use trestle_core::api::identity::TokenView;
use trestle_core::audit::{AuditAnswer, DisableUnused, NamedQuery, UnusedReport};

/// Ad-hoc filters of `trestle audit query`.
#[derive(Args, Debug, Default)]
pub struct Filters {
    /// User name or token id.
    #[arg(long)]
    pub principal: Option<String>,
    /// Action (`job.cancel`), or a prefix ending in `.` or `*` (`token.`).
    #[arg(long)]
    pub action: Option<String>,
    /// Resource (`job:12`, `user:alice`).
    #[arg(long)]
    pub resource: Option<String>,
    /// Source address.
    #[arg(long)]
    pub ip: Option<String>,
    /// HTTP method.
    #[arg(long)]
    pub method: Option<String>,
    /// From: a duration ago (`7d`, `12h`), a time in ms, or `all` (default 7d).
    #[arg(long)]
    pub since: Option<String>,
    /// Until: a duration ago or a time in ms.
    #[arg(long)]
    pub until: Option<String>,
    /// Status (`403`), class (`4xx`) or range (`400-499`).
    #[arg(long)]
    pub status: Option<String>,
    /// Only requests that may change something.
    #[arg(long)]
    pub changes: bool,
    /// Leave out workers' own traffic (leases, updates, heartbeats).
    #[arg(long)]
    pub no_workers: bool,
    /// Count by principal, source-ip, action or resource instead of listing.
    #[arg(long)]
    pub group_by: Option<String>,
    /// At most this many rows (default 100).
    #[arg(long)]
    pub limit: Option<u32>,
}

/// `trestle audit ...`.
#[derive(Subcommand, Debug)]
pub enum AuditCmd {
    /// Query the audit trail: a named query (see `trestle audit queries`)
    /// with `--param k=v`, or ad-hoc filters.
    Query {
        /// A named query.
        name: Option<String>,
        /// A parameter of the named query (repeatable).
        #[arg(long = "param", value_name = "KEY=VALUE")]
        params: Vec<String>,
        /// Ad-hoc filters (without a name).
        #[command(flatten)]
        filters: Box<Filters>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the named queries.
    Queries {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Tokens and users not used for a period; --disable revokes and disables them.
    Unused {
        /// The period in days (default 60).
        #[arg(long, conflicts_with = "period")]
        days: Option<u32>,
        /// The period as a duration (`12h`, `90d`).
        #[arg(long)]
        period: Option<String>,
        /// Revoke the tokens and disable the users (admins are never disabled).
        #[arg(long)]
        disable: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn filter_params(f: &Filters) -> Vec<(&'static str, String)> {
    let mut q = Vec::new();
    let mut add = |k: &'static str, v: &Option<String>| {
        if let Some(v) = v {
            q.push((k, v.clone()));
        }
    };
    add("principal", &f.principal);
    add("action", &f.action);
    add("resource", &f.resource);
    add("ip", &f.ip);
    add("method", &f.method);
    add("since", &f.since);
    add("until", &f.until);
    add("status", &f.status);
    add("group-by", &f.group_by);
    if f.changes {
        q.push(("changes", "true".into()));
    }
    if f.no_workers {
        q.push(("workers", "false".into()));
    }
    if let Some(l) = f.limit {
        q.push(("limit", l.to_string()));
    }
    q
}

fn print_tokens(tokens: &[TokenView]) {
    let rows: Vec<Vec<String>> = tokens
        .iter()
        .map(|t| {
            vec![
                t.id.clone(),
                t.name.clone(),
                t.user.clone().unwrap_or_else(|| "-".into()),
                time(t.created_at),
                t.last_used_at.map(time).unwrap_or_else(|| "never".into()),
            ]
        })
        .collect();
    print!(
        "{}",
        table(&["TOKEN", "NAME", "USER", "CREATED", "LAST USED"], &rows)
    );
}

fn print_answer(a: &AuditAnswer) {
    if !a.groups.is_empty() {
        let rows: Vec<Vec<String>> = a
            .groups
            .iter()
            .map(|g| {
                vec![
                    g.key.clone(),
                    g.count.to_string(),
                    time(g.first),
                    time(g.last),
                ]
            })
            .collect();
        print!("{}", table(&["KEY", "COUNT", "FIRST", "LAST"], &rows));
        return;
    }
    if !a.tokens.is_empty() {
        print_tokens(&a.tokens);
        return;
    }
    let rows: Vec<Vec<String>> = a
        .records
        .iter()
        .map(|r| {
            vec![
                time(r.at),
                r.user
                    .clone()
                    .or_else(|| r.token.clone())
                    .unwrap_or_else(|| "-".into()),
                r.source_ip.clone(),
                r.action.clone(),
                r.resource.clone().unwrap_or_else(|| "-".into()),
                r.status.to_string(),
                if r.count > 1 {
                    format!("x{}", r.count)
                } else {
                    String::new()
                },
                format!("{} {}", r.method, r.path),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &[
                "TIME",
                "PRINCIPAL",
                "FROM",
                "ACTION",
                "RESOURCE",
                "STATUS",
                "N",
                "REQUEST"
            ],
            &rows
        )
    );
}

/// Runs `trestle audit ...`.
pub async fn run(cmd: AuditCmd, conn: &Conn) -> Result<ExitCode> {
    let c = client(conn)?;
    match cmd {
        AuditCmd::Query {
            name,
            params,
            filters,
            json,
        } => {
            let answer: AuditAnswer = match name {
                Some(name) => {
                    let adhoc = filter_params(&filters);
                    if !adhoc.is_empty() {
                        return usage("a named query takes --param KEY=VALUE, not filter flags");
                    }
                    let mut q = Vec::new();
                    for p in &params {
                        match p.split_once('=') {
                            Some((k, v)) if !k.trim().is_empty() => q.push((k.trim(), v)),
                            _ => return usage(format!("--param `{p}`: use KEY=VALUE")),
                        }
                    }
                    c.call::<(), _>(Method::GET, &["audit", "queries", &name], &q, None)
                        .await?
                }
                None => {
                    if !params.is_empty() {
                        return usage(
                            "--param needs a query name: `trestle audit query NAME --param k=v`",
                        );
                    }
                    let owned = filter_params(&filters);
                    let q: Vec<(&str, &str)> =
                        owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
                    c.call::<(), _>(Method::GET, &["audit"], &q, None).await?
                }
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&answer)?);
            } else {
                print_answer(&answer);
            }
        }
        AuditCmd::Queries { json } => {
            let qs: Vec<NamedQuery> = c
                .call::<(), _>(Method::GET, &["audit", "queries"], &[], None)
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&qs)?);
            } else {
                let rows: Vec<Vec<String>> = qs
                    .iter()
                    .map(|q| {
                        let params: Vec<String> = q
                            .params
                            .iter()
                            .map(|(k, d)| match d {
                                Some(d) if d.is_empty() => format!("{k}=(any)"),
                                Some(d) => format!("{k}={d}"),
                                None => format!("{k} (required)"),
                            })
                            .collect();
                        vec![q.name.clone(), params.join(", "), q.description.clone()]
                    })
                    .collect();
                print!("{}", table(&["QUERY", "PARAMETERS", "DESCRIPTION"], &rows));
            }
        }
        AuditCmd::Unused {
            days,
            period,
            disable,
            json,
        } => {
            let period = period.unwrap_or_else(|| format!("{}d", days.unwrap_or(60)));
            let report: UnusedReport = if disable {
                let req = DisableUnused {
                    period: Some(period),
                };
                c.call(Method::POST, &["audit", "unused"], &[], Some(&req))
                    .await?
            } else {
                c.call::<(), _>(
                    Method::GET,
                    &["audit", "unused"],
                    &[("period", period.as_str())],
                    None,
                )
                .await?
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
                return Ok(ExitCode::SUCCESS);
            }
            let verb = if report.disabled { "revoked" } else { "unused" };
            println!(
                "tokens {verb} (no use for {}):",
                crate::output::duration(report.period_secs as i64 * 1000)
            );
            print_tokens(&report.tokens);
            let verb = if report.disabled {
                "disabled"
            } else {
                "unused"
            };
            println!("users {verb}:");
            let rows: Vec<Vec<String>> = report
                .users
                .iter()
                .map(|u| {
                    vec![
                        u.name.clone(),
                        u.role.as_str().to_string(),
                        u.last_seen_at.map(time).unwrap_or_else(|| "never".into()),
                    ]
                })
                .collect();
            print!("{}", table(&["USER", "ROLE", "LAST SEEN"], &rows));
        }
    }
    Ok(ExitCode::SUCCESS)
}
