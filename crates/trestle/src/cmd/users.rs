//! `trestle user add|list|show|disable|enable|set-role|set-password|set-default`.

use super::client;
use crate::Conn;
use crate::output::{table, time};
use anyhow::Result;
use clap::Subcommand;
use std::process::ExitCode;
use trestle_client::{Client, Method};
use trestle_core::api::identity::{NewUser, UserUpdate, UserView, WhoAmI};

/// `trestle user ...`.
#[derive(Subcommand, Debug)]
pub enum UserCmd {
    /// Add a user (admins).
    Add {
        /// Login name.
        name: String,
        /// admin, researcher (default), internal-guest or guest.
        #[arg(long)]
        role: Option<String>,
        /// Organisation.
        #[arg(long)]
        org: Option<String>,
        /// Default project (the user becomes a member).
        #[arg(long)]
        project: Option<String>,
        /// Set a password for the web UI, read from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List users (admins).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a user.
    Show {
        /// Login name.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Disable users: they cannot log in and their tokens stop working.
    Disable {
        /// Login names.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Enable users again.
    Enable {
        /// Login names.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Change a user's role (admins).
    SetRole {
        /// Login name.
        name: String,
        /// admin, researcher, internal-guest or guest.
        role: String,
    },
    /// Set a user's password (your own, or anyone's for admins), read from
    /// stdin. For your own, stdin holds your current password on the first
    /// line and the new one on the second (just the new one when you have
    /// none yet); your other sessions end. An admin setting someone
    /// else's gives only the new one; that user's sessions end, and their
    /// tokens are revoked unless the server is configured otherwise.
    SetPassword {
        /// Login name.
        name: String,
    },
    /// Set a user's default project (they must be a member).
    SetDefault {
        /// Login name.
        name: String,
        /// Project.
        project: String,
    },
}

fn print_users(users: &[UserView]) {
    let rows: Vec<Vec<String>> = users
        .iter()
        .map(|u| {
            vec![
                u.name.clone(),
                u.role.as_str().to_string(),
                u.org.clone().unwrap_or_else(|| "-".into()),
                u.default_project.clone().unwrap_or_else(|| "-".into()),
                if u.disabled { "disabled" } else { "enabled" }.to_string(),
                u.last_seen_at.map(time).unwrap_or_else(|| "never".into()),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &[
                "NAME",
                "ROLE",
                "ORG",
                "DEFAULT PROJECT",
                "STATE",
                "LAST SEEN"
            ],
            &rows
        )
    );
}

async fn patch(c: &Client, name: &str, u: &UserUpdate) -> Result<UserView> {
    Ok(c.call(Method::PATCH, &["users", name], &[], Some(u))
        .await?)
}

fn stdin_password() -> Result<String> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// Runs `trestle user ...`.
pub async fn run(cmd: UserCmd, conn: &Conn) -> Result<ExitCode> {
    let c = client(conn)?;
    match cmd {
        UserCmd::Add {
            name,
            role,
            org,
            project,
            password_stdin,
            json,
        } => {
            let req = NewUser {
                name,
                role,
                org,
                default_project: project,
                password: if password_stdin {
                    Some(stdin_password()?)
                } else {
                    None
                },
            };
            let u: UserView = c.call(Method::POST, &["users"], &[], Some(&req)).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&u)?);
            } else {
                println!(
                    "added {} ({}); create a token for them with `trestle token create --user {}`",
                    u.name, u.role, u.name
                );
            }
        }
        UserCmd::List { json } => {
            let users: Vec<UserView> = c.call::<(), _>(Method::GET, &["users"], &[], None).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&users)?);
            } else {
                print_users(&users);
            }
        }
        UserCmd::Show { name, json } => {
            let u: UserView = c
                .call::<(), _>(Method::GET, &["users", &name], &[], None)
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&u)?);
            } else {
                print_users(std::slice::from_ref(&u));
                if let Some(a) = &u.attributes {
                    print_attributes(a);
                }
            }
        }
        UserCmd::Disable { names } => {
            for n in names {
                let u = patch(
                    &c,
                    &n,
                    &UserUpdate {
                        disabled: Some(true),
                        ..Default::default()
                    },
                )
                .await?;
                println!("disabled {}", u.name);
            }
        }
        UserCmd::Enable { names } => {
            for n in names {
                let u = patch(
                    &c,
                    &n,
                    &UserUpdate {
                        disabled: Some(false),
                        ..Default::default()
                    },
                )
                .await?;
                println!("enabled {}", u.name);
            }
        }
        UserCmd::SetRole { name, role } => {
            let u = patch(
                &c,
                &name,
                &UserUpdate {
                    role: Some(role),
                    ..Default::default()
                },
            )
            .await?;
            println!("{} is now {}", u.name, u.role);
        }
        UserCmd::SetPassword { name } => {
            let me: WhoAmI = c.call::<(), _>(Method::GET, &["whoami"], &[], None).await?;
            let own = me.user.as_ref().is_some_and(|u| u.name == name);
            let first = stdin_password()?;
            let (current_password, password) = if own {
                match stdin_password()? {
                    second if !second.is_empty() => (Some(first), second),
                    _ => (None, first),
                }
            } else {
                (None, first)
            };
            let u = patch(
                &c,
                &name,
                &UserUpdate {
                    password: Some(password),
                    current_password,
                    ..Default::default()
                },
            )
            .await?;
            println!("password of {} set", u.name);
        }
        UserCmd::SetDefault { name, project } => {
            let u = patch(
                &c,
                &name,
                &UserUpdate {
                    default_project: Some(project),
                    ..Default::default()
                },
            )
            .await?;
            println!(
                "default project of {} is {}",
                u.name,
                u.default_project.unwrap_or_default()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The kept attributes of a user, each with where it came from.
fn print_attributes(a: &trestle_core::identity::external::UserAttributes) {
    let origin = |k: &str| {
        a.origins
            .get(k)
            .map(|o| format!("  ({o})"))
            .unwrap_or_default()
    };
    println!();
    println!("source:        {}", a.source);
    if let Some(s) = &a.subject {
        println!("subject:       {s}");
    }
    let rows = [
        ("display name", "display_name", a.display_name.clone()),
        ("email", "email", a.email.clone()),
        ("unix account", "unix_name", a.unix_name.clone()),
        ("uid", "uid", a.uid.map(|u| u.to_string())),
    ];
    for (label, key, v) in rows {
        if let Some(v) = v {
            println!("{:<15}{v}{}", format!("{label}:"), origin(key));
        }
    }
    if !a.groups.is_empty() {
        println!(
            "{:<15}{}{}",
            "groups:",
            a.groups.join(", "),
            origin("groups")
        );
    }
    if let Some(r) = a.origins.get("role") {
        println!("{:<15}from {r}", "role:");
    }
}
