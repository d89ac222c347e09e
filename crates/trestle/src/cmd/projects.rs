//! `trestle index add|list` and `trestle project add|list|show|add-member|remove-member`.

use super::client;
use crate::Conn;
use crate::output::table;
use anyhow::Result;
use clap::Subcommand;
use std::process::ExitCode;
use trestle_client::Method;
use trestle_core::api::identity::{IndexView, MemberRequest, NewIndex, NewProject, ProjectView};

/// `trestle index ...`.
#[derive(Subcommand, Debug)]
pub enum IndexCmd {
    /// Add an index (a funding source; admins).
    Add {
        /// Name.
        name: String,
        /// Description.
        #[arg(long)]
        description: Option<String>,
    },
    /// List indexes and their projects.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `trestle project ...`.
#[derive(Subcommand, Debug)]
pub enum ProjectCmd {
    /// Add a project under an index (admins).
    Add {
        /// Name.
        name: String,
        /// The index (funding source) it is charged to.
        #[arg(long, default_value = "default")]
        index: String,
        /// Organisation (internal guests work only in their organisation's projects).
        #[arg(long)]
        org: Option<String>,
        /// Description.
        #[arg(long)]
        description: Option<String>,
    },
    /// List projects (yours; admins: all).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a project and its members.
    Show {
        /// Name.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Add a member or change their role (admins and the project's managers).
    AddMember {
        /// Project.
        project: String,
        /// User.
        user: String,
        /// viewer, member (default) or manager.
        #[arg(long)]
        role: Option<String>,
    },
    /// Remove a member.
    RemoveMember {
        /// Project.
        project: String,
        /// User.
        user: String,
    },
}

fn print_projects(projects: &[ProjectView]) {
    let rows: Vec<Vec<String>> = projects
        .iter()
        .map(|p| {
            vec![
                p.name.clone(),
                p.index.clone(),
                p.org.clone().unwrap_or_else(|| "-".into()),
                p.members
                    .iter()
                    .map(|m| format!("{} ({})", m.user, m.role.as_str()))
                    .collect::<Vec<_>>()
                    .join(", "),
            ]
        })
        .collect();
    print!("{}", table(&["PROJECT", "INDEX", "ORG", "MEMBERS"], &rows));
}

/// Runs `trestle index ...`.
pub async fn index(cmd: IndexCmd, conn: &Conn) -> Result<ExitCode> {
    let c = client(conn)?;
    match cmd {
        IndexCmd::Add { name, description } => {
            let i: IndexView = c
                .call(
                    Method::POST,
                    &["indexes"],
                    &[],
                    Some(&NewIndex { name, description }),
                )
                .await?;
            println!("added index {}", i.name);
        }
        IndexCmd::List { json } => {
            let all: Vec<IndexView> = c
                .call::<(), _>(Method::GET, &["indexes"], &[], None)
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                let rows: Vec<Vec<String>> = all
                    .iter()
                    .map(|i| {
                        vec![
                            i.name.clone(),
                            i.projects.join(", "),
                            i.description.clone().unwrap_or_default(),
                        ]
                    })
                    .collect();
                print!("{}", table(&["INDEX", "PROJECTS", "DESCRIPTION"], &rows));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `trestle project ...`.
pub async fn project(cmd: ProjectCmd, conn: &Conn) -> Result<ExitCode> {
    let c = client(conn)?;
    match cmd {
        ProjectCmd::Add {
            name,
            index,
            org,
            description,
        } => {
            let req = NewProject {
                name,
                index,
                org,
                description,
            };
            let p: ProjectView = c.call(Method::POST, &["projects"], &[], Some(&req)).await?;
            println!("added project {} under index {}", p.name, p.index);
        }
        ProjectCmd::List { json } => {
            let all: Vec<ProjectView> = c
                .call::<(), _>(Method::GET, &["projects"], &[], None)
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                print_projects(&all);
            }
        }
        ProjectCmd::Show { name, json } => {
            let p: ProjectView = c
                .call::<(), _>(Method::GET, &["projects", &name], &[], None)
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&p)?);
            } else {
                print_projects(&[p]);
            }
        }
        ProjectCmd::AddMember {
            project,
            user,
            role,
        } => {
            let req = MemberRequest {
                user: user.clone(),
                role,
            };
            let p: ProjectView = c
                .call(
                    Method::POST,
                    &["projects", &project, "members"],
                    &[],
                    Some(&req),
                )
                .await?;
            let role = p
                .members
                .iter()
                .find(|m| m.user == user)
                .map(|m| m.role.as_str())
                .unwrap_or("member");
            println!("{user} is a {role} of {}", p.name);
        }
        ProjectCmd::RemoveMember { project, user } => {
            let p: ProjectView = c
                .call::<(), _>(
                    Method::DELETE,
                    &["projects", &project, "members", &user],
                    &[],
                    None,
                )
                .await?;
            println!("removed {user} from {}", p.name);
        }
    }
    Ok(ExitCode::SUCCESS)
}
