//! `trestle notify targets|rules|subscriptions|subscribe|unsubscribe|
//! test|deliveries|retry|address` and `trestle secrets rotate-key`:
//! notification targets (secrets are sent, never shown), admin rules,
//! personal subscriptions, the outbox's deliveries and dead letters.

use super::client;
use crate::Conn;
use crate::output::{table, time};
use anyhow::Result;
use clap::{Args, Subcommand};
use std::process::ExitCode;
use trestle_client::Method;
use trestle_core::api::notify::{
    AddressRequest, DeliveryView, RotateResult, RuleView, SubscriptionView, SubscriptionsView,
    TargetCreated, TargetView, TestResult, UnsubscribeRequest, Unsubscribed,
};
use trestle_core::notify::rule::{RuleSpec, SubscriptionSpec, parse_list};
use trestle_core::notify::target::{SmtpTls, TargetSpec};

/// `trestle notify ...`.
#[derive(Subcommand, Debug)]
pub enum NotifyCmd {
    /// List targets (admins: all; others: their own), or add/remove one.
    Targets {
        #[command(subcommand)]
        cmd: Option<TargetsCmd>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List rules (admins), or add/remove one.
    Rules {
        #[command(subcommand)]
        cmd: Option<RulesCmd>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Your notification address, whether anything reaches you, and your
    /// subscriptions (admins: `--user`).
    Subscriptions {
        /// Another user's (admins).
        #[arg(long)]
        user: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Subscribe to your own events of some types, to your email or a
    /// target of yours, or to one job's events.
    Subscribe {
        /// Event types or patterns, comma-separated (`job.failed,workspace.*`).
        #[arg(long)]
        events: String,
        /// A target of yours (default: your email).
        #[arg(long)]
        target: Option<String>,
        /// Only this job's events.
        #[arg(long)]
        job: Option<i64>,
        /// For another user (admins).
        #[arg(long)]
        user: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Mute event types in your email, or delete a subscription by id.
    Unsubscribe {
        /// Event types or patterns to mute, comma-separated.
        #[arg(long, conflicts_with = "id")]
        events: Option<String>,
        /// A subscription's id.
        #[arg(long)]
        id: Option<i64>,
        /// For another user (admins).
        #[arg(long)]
        user: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Send a test message to a target now.
    Test {
        /// Target name.
        target: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Deliveries, newest first: pending, delivered, dead letters.
    Deliveries {
        /// `pending`, `delivered` or `dead`.
        #[arg(long)]
        state: Option<String>,
        /// Only this target's.
        #[arg(long)]
        target: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Try a dead letter again.
    Retry {
        /// Delivery id (`msg_...`).
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Set the address a user's notifications go to (admins).
    Address {
        /// User.
        user: String,
        /// The address (left out with `--clear`).
        email: Option<String>,
        /// Go back to the identity provider's address.
        #[arg(long, conflicts_with = "email")]
        clear: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `trestle notify targets ...`.
#[derive(Subcommand, Debug)]
pub enum TargetsCmd {
    /// Add a target.
    Add(Box<TargetArgs>),
    /// Show one.
    Show {
        /// Name.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete one (and what it still had to send).
    Rm {
        /// Name.
        name: String,
    },
}

/// A target's settings on the command line. Secrets may come from the
/// environment instead, so they stay out of shell history.
#[derive(Args, Debug)]
pub struct TargetArgs {
    /// Name.
    pub name: String,
    /// `slack`, `teams`, `webhook` or `email`.
    #[arg(long)]
    pub kind: String,
    /// The webhook URL (a secret; `--url` is the server's).
    #[arg(long, env = "TRESTLE_NOTIFY_WEBHOOK_URL", hide_env_values = true)]
    pub webhook_url: Option<String>,
    /// The webhook signing secret (`whsec_...`; default: made up and shown once).
    #[arg(long, env = "TRESTLE_NOTIFY_SIGNING_SECRET", hide_env_values = true)]
    pub signing_secret: Option<String>,
    /// SMTP host.
    #[arg(long)]
    pub smtp_host: Option<String>,
    /// SMTP port.
    #[arg(long)]
    pub smtp_port: Option<u16>,
    /// `starttls` (default), `implicit` or `none`.
    #[arg(long)]
    pub smtp_tls: Option<String>,
    /// SMTP user name.
    #[arg(long)]
    pub smtp_username: Option<String>,
    /// SMTP password (a secret).
    #[arg(long, env = "TRESTLE_NOTIFY_SMTP_PASSWORD", hide_env_values = true)]
    pub smtp_password: Option<String>,
    /// Sender address.
    #[arg(long)]
    pub from: Option<String>,
    /// A CA certificate file (PEM) the SMTP server's certificate may chain to.
    #[arg(long)]
    pub smtp_ca: Option<std::path::PathBuf>,
    /// Fixed recipients, comma-separated (default: each user's address).
    #[arg(long, value_delimiter = ',')]
    pub to: Vec<String>,
    /// Least time between two messages (ms).
    #[arg(long)]
    pub min_interval_ms: Option<i64>,
    /// Template of each event's line (`{title} {type} {link}`...).
    #[arg(long)]
    pub template: Option<String>,
    /// Allow loopback addresses and plain HTTP to them (admins).
    #[arg(long)]
    pub allow_loopback: bool,
    /// Allow private addresses (admins).
    #[arg(long)]
    pub allow_private: bool,
    /// Allow link-local and metadata addresses (admins).
    #[arg(long)]
    pub allow_link_local: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `trestle notify rules ...`.
#[derive(Subcommand, Debug)]
pub enum RulesCmd {
    /// Add a rule: events matching patterns (of a project) go to targets.
    Add {
        /// Name.
        name: String,
        /// Event types or patterns, comma-separated.
        #[arg(long)]
        events: String,
        /// Target names, comma-separated.
        #[arg(long, value_delimiter = ',')]
        targets: Vec<String>,
        /// Only this project's events.
        #[arg(long)]
        project: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete a rule.
    Rm {
        /// Name.
        name: String,
    },
}

/// `trestle secrets ...`.
#[derive(Subcommand, Debug)]
pub enum SecretsCmd {
    /// Add a new key to the server's keyring and re-encrypt every stored
    /// secret under it (admins).
    RotateKey {
        /// Re-encrypt under the current key without adding one (the new
        /// key was put last in every server's keyring by hand).
        #[arg(long)]
        no_new_key: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn print_json<T: serde::Serialize>(v: &T) -> Result<ExitCode> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(ExitCode::SUCCESS)
}

fn target_rows(list: &[TargetView]) -> Vec<Vec<String>> {
    list.iter()
        .map(|t| {
            vec![
                t.name.clone(),
                t.kind.clone(),
                t.owner.clone().unwrap_or_else(|| "(shared)".into()),
                t.url
                    .clone()
                    .or_else(|| t.smtp_host.as_ref().map(|h| format!("smtp://{h}")))
                    .unwrap_or_default(),
                t.key_id.clone(),
            ]
        })
        .collect()
}

fn delivery_rows(list: &[DeliveryView]) -> Vec<Vec<String>> {
    list.iter()
        .map(|d| {
            vec![
                d.id.clone(),
                d.target.clone(),
                d.user.clone().unwrap_or_default(),
                d.kind.clone(),
                d.events.to_string(),
                d.state.clone(),
                d.attempts.to_string(),
                time(d.created_at),
                d.last_error.clone().unwrap_or_default(),
            ]
        })
        .collect()
}

fn print_subscriptions(s: &SubscriptionsView) {
    println!(
        "user {}: {}",
        s.user,
        match (&s.email, &s.email_source) {
            (Some(e), Some(src)) => format!("email {e} (from {src})"),
            (Some(e), None) => format!("email {e}"),
            _ => "no email address".into(),
        }
    );
    if let Some(w) = &s.warning {
        println!("warning: {w}");
    }
    println!("sent to your email unless muted: {}", s.defaults.join(", "));
    let rows: Vec<Vec<String>> = s
        .subscriptions
        .iter()
        .map(|x| {
            vec![
                x.id.to_string(),
                x.mode.clone(),
                x.events.join(","),
                x.target.clone().unwrap_or_else(|| "(email)".into()),
                x.job.map(|j| j.to_string()).unwrap_or_default(),
            ]
        })
        .collect();
    print!(
        "{}",
        table(&["ID", "MODE", "EVENTS", "TARGET", "JOB"], &rows)
    );
}

fn user_query(user: &Option<String>) -> Vec<(&str, &str)> {
    user.as_deref()
        .map(|u| vec![("user", u)])
        .unwrap_or_default()
}

/// Runs `trestle notify ...`.
pub async fn run(cmd: NotifyCmd, conn: &Conn) -> Result<ExitCode> {
    let c = client(conn)?;
    match cmd {
        NotifyCmd::Targets { cmd: None, json } => {
            let list: Vec<TargetView> = c
                .call::<(), _>(Method::GET, &["notify", "targets"], &[], None)
                .await?;
            if json {
                return print_json(&list);
            }
            print!(
                "{}",
                table(
                    &["NAME", "KIND", "OWNER", "WHERE", "KEY"],
                    &target_rows(&list)
                )
            );
        }
        NotifyCmd::Targets {
            cmd: Some(TargetsCmd::Add(a)),
            ..
        } => {
            let tls = match a.smtp_tls.as_deref() {
                None => None,
                Some("starttls") => Some(SmtpTls::Starttls),
                Some("implicit") => Some(SmtpTls::Implicit),
                Some("none") => Some(SmtpTls::None),
                Some(other) => {
                    return crate::output::usage(format!(
                        "--smtp-tls: `{other}` is not starttls, implicit or none"
                    ));
                }
            };
            let spec = TargetSpec {
                name: a.name.clone(),
                kind: a.kind.clone(),
                url: a.webhook_url.clone(),
                signing_secret: a.signing_secret.clone(),
                smtp_host: a.smtp_host.clone(),
                smtp_port: a.smtp_port,
                smtp_tls: tls,
                smtp_username: a.smtp_username.clone(),
                smtp_password: a.smtp_password.clone(),
                from: a.from.clone(),
                smtp_ca: match &a.smtp_ca {
                    Some(p) => Some(
                        std::fs::read_to_string(p)
                            .map_err(|e| anyhow::anyhow!("--smtp-ca {}: {e}", p.display()))?,
                    ),
                    None => None,
                },
                to: a.to.clone(),
                min_interval_ms: a.min_interval_ms,
                template: a.template.clone(),
                allow_loopback: a.allow_loopback,
                allow_private: a.allow_private,
                allow_link_local: a.allow_link_local,
            };
            let made: TargetCreated = c
                .call(Method::POST, &["notify", "targets"], &[], Some(&spec))
                .await?;
            if a.json {
                return print_json(&made);
            }
            print!(
                "{}",
                table(
                    &["NAME", "KIND", "OWNER", "WHERE", "KEY"],
                    &target_rows(std::slice::from_ref(&made.target))
                )
            );
            if let Some(s) = &made.signing_secret {
                println!("signing secret (shown once; give it to the receiver): {s}");
            }
        }
        NotifyCmd::Targets {
            cmd: Some(TargetsCmd::Show { name, json }),
            ..
        } => {
            let t: TargetView = c
                .call::<(), _>(Method::GET, &["notify", "targets", &name], &[], None)
                .await?;
            if json {
                return print_json(&t);
            }
            print!(
                "{}",
                table(
                    &["NAME", "KIND", "OWNER", "WHERE", "KEY"],
                    &target_rows(std::slice::from_ref(&t))
                )
            );
        }
        NotifyCmd::Targets {
            cmd: Some(TargetsCmd::Rm { name }),
            ..
        } => {
            c.call_empty(Method::DELETE, &["notify", "targets", &name])
                .await?;
            println!("deleted target {name}");
        }
        NotifyCmd::Rules { cmd: None, json } => {
            let list: Vec<RuleView> = c
                .call::<(), _>(Method::GET, &["notify", "rules"], &[], None)
                .await?;
            if json {
                return print_json(&list);
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|r| {
                    vec![
                        r.name.clone(),
                        r.events.join(","),
                        r.project.clone().unwrap_or_else(|| "*".into()),
                        r.targets.join(","),
                    ]
                })
                .collect();
            print!(
                "{}",
                table(&["NAME", "EVENTS", "PROJECT", "TARGETS"], &rows)
            );
        }
        NotifyCmd::Rules {
            cmd:
                Some(RulesCmd::Add {
                    name,
                    events,
                    targets,
                    project,
                    json,
                }),
            ..
        } => {
            let spec = RuleSpec {
                name,
                events: parse_list(&events, "events")
                    .map_err(|e| anyhow::anyhow!("--events: {}", e.message))?,
                project,
                targets,
            };
            let r: RuleView = c
                .call(Method::POST, &["notify", "rules"], &[], Some(&spec))
                .await?;
            if json {
                return print_json(&r);
            }
            println!(
                "rule {}: {} -> {}",
                r.name,
                r.events.join(","),
                r.targets.join(",")
            );
        }
        NotifyCmd::Rules {
            cmd: Some(RulesCmd::Rm { name }),
            ..
        } => {
            c.call_empty(Method::DELETE, &["notify", "rules", &name])
                .await?;
            println!("deleted rule {name}");
        }
        NotifyCmd::Subscriptions { user, json } => {
            let s: SubscriptionsView = c
                .call::<(), _>(
                    Method::GET,
                    &["notify", "subscriptions"],
                    &user_query(&user),
                    None,
                )
                .await?;
            if json {
                return print_json(&s);
            }
            print_subscriptions(&s);
        }
        NotifyCmd::Subscribe {
            events,
            target,
            job,
            user,
            json,
        } => {
            let spec = SubscriptionSpec {
                events: parse_list(&events, "events")
                    .map_err(|e| anyhow::anyhow!("--events: {}", e.message))?,
                target,
                job,
            };
            let s: SubscriptionView = c
                .call(
                    Method::POST,
                    &["notify", "subscriptions"],
                    &user_query(&user),
                    Some(&spec),
                )
                .await?;
            if json {
                return print_json(&s);
            }
            println!(
                "subscribed ({}): {} -> {}",
                s.id,
                s.events.join(","),
                s.target.as_deref().unwrap_or("your email")
            );
        }
        NotifyCmd::Unsubscribe {
            events,
            id,
            user,
            json,
        } => {
            let req = UnsubscribeRequest {
                events: match &events {
                    Some(e) => parse_list(e, "events")
                        .map_err(|e| anyhow::anyhow!("--events: {}", e.message))?,
                    None => Vec::new(),
                },
                id,
                user,
            };
            let s: Unsubscribed = c
                .call(Method::POST, &["notify", "unsubscribe"], &[], Some(&req))
                .await?;
            if json {
                return print_json(&s);
            }
            match (s.muted, s.deleted) {
                (Some(m), _) => println!("muted in your email ({}): {}", m.id, m.events.join(",")),
                (None, Some(d)) => println!("deleted subscription {d}"),
                (None, None) => {}
            }
        }
        NotifyCmd::Test { target, json } => {
            let r: TestResult = c
                .call::<(), _>(
                    Method::POST,
                    &["notify", "targets", &target, "test"],
                    &[],
                    None,
                )
                .await?;
            if json {
                print_json(&r)?;
            } else if r.delivered {
                println!("delivered test message {} to {target}", r.id);
            } else {
                println!(
                    "test message {} to {target} failed: {}",
                    r.id,
                    r.error.as_deref().unwrap_or("?")
                );
            }
            return Ok(if r.delivered {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            });
        }
        NotifyCmd::Deliveries {
            state,
            target,
            limit,
            json,
        } => {
            let limit = limit.to_string();
            let mut q: Vec<(&str, &str)> = vec![("limit", &limit)];
            if let Some(s) = &state {
                q.push(("state", s));
            }
            if let Some(t) = &target {
                q.push(("target", t));
            }
            let list: Vec<DeliveryView> = c
                .call::<(), _>(Method::GET, &["notify", "deliveries"], &q, None)
                .await?;
            if json {
                return print_json(&list);
            }
            print!(
                "{}",
                table(
                    &[
                        "ID",
                        "TARGET",
                        "USER",
                        "EVENT",
                        "EVENTS",
                        "STATE",
                        "ATTEMPTS",
                        "MADE",
                        "LAST ERROR"
                    ],
                    &delivery_rows(&list)
                )
            );
            if list.iter().any(|d| d.state == "dead") {
                println!("retry a dead letter with `trestle notify retry ID`");
            }
        }
        NotifyCmd::Retry { id, json } => {
            let d: DeliveryView = c
                .call::<(), _>(
                    Method::POST,
                    &["notify", "deliveries", &id, "retry"],
                    &[],
                    None,
                )
                .await?;
            if json {
                return print_json(&d);
            }
            println!("{} is {} again", d.id, d.state);
        }
        NotifyCmd::Address {
            user,
            email,
            clear,
            json,
        } => {
            if email.is_none() && !clear {
                return crate::output::usage("give an address, or --clear");
            }
            let s: SubscriptionsView = c
                .call(
                    Method::PUT,
                    &["notify", "addresses", &user],
                    &[],
                    Some(&AddressRequest { email }),
                )
                .await?;
            if json {
                return print_json(&s);
            }
            print_subscriptions(&s);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `trestle secrets ...`.
pub async fn secrets(cmd: SecretsCmd, conn: &Conn) -> Result<ExitCode> {
    let c = client(conn)?;
    match cmd {
        SecretsCmd::RotateKey { no_new_key, json } => {
            let body = serde_json::json!({"add_key": !no_new_key});
            let r: RotateResult = c
                .call(
                    Method::POST,
                    &["notify", "secrets", "rotate"],
                    &[],
                    Some(&body),
                )
                .await?;
            if json {
                return print_json(&r);
            }
            println!(
                "key {}: {} secrets re-encrypted, {} already under it",
                r.key_id, r.resealed, r.current
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
