//! `trestle login`, `trestle whoami` and `trestle token create|list|revoke`.

use super::{client, endpoint};
use crate::Conn;
use crate::output::{table, time, usage};
use crate::settings::{ClientFile, save_client_file};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use trestle_client::{Client, Method};
use trestle_core::api::identity::{
    LoginRequest, LoginResponse, NewToken, TokenCreated, TokenView, WhoAmI,
};

/// `trestle login` options.
#[derive(Args, Debug)]
pub struct LoginArgs {
    /// Log in with this user's password (asked for, or read from stdin);
    /// without it, the token from --token / TRESTLE_TOKEN is checked and stored.
    #[arg(long)]
    pub user: Option<String>,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    pub password_stdin: bool,
    /// Lifetime of the token the login creates (default 30d).
    #[arg(long, default_value = "30d")]
    pub ttl: String,
    /// Sign in through the university's identity provider (OpenID
    /// Connect): a browser round trip to a port on 127.0.0.1.
    #[arg(long, conflicts_with_all = ["user", "password_stdin"])]
    pub sso: bool,
    /// With --sso: the provider (needed when the server has several).
    #[arg(long, requires = "sso")]
    pub provider: Option<String>,
    /// With --sso: the loopback port the browser comes back to (default:
    /// any free one; the provider must allow it).
    #[arg(long, requires = "sso", default_value_t = 0)]
    pub port: u16,
}

/// `trestle token ...`.
#[derive(Subcommand, Debug)]
pub enum TokenCmd {
    /// Create a token; the secret is printed once.
    Create {
        /// A label.
        #[arg(long)]
        name: Option<String>,
        /// Only reads are allowed with it.
        #[arg(long)]
        read_only: bool,
        /// Lifetime (default 90d; worker credentials 1h).
        #[arg(long)]
        ttl: Option<String>,
        /// For another user (admins).
        #[arg(long)]
        user: Option<String>,
        /// A worker credential: lease, report, stage inputs, upload outputs (admins).
        #[arg(long)]
        worker: bool,
        /// Print JSON (secret and metadata).
        #[arg(long)]
        json: bool,
    },
    /// List tokens (yours; admins: everyone's with --all).
    List {
        /// Everyone's (admins).
        #[arg(long)]
        all: bool,
        /// Include revoked tokens.
        #[arg(long)]
        revoked: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke tokens at once.
    Revoke {
        /// Token ids (`tok-...`, from `trestle token list`).
        #[arg(required = true)]
        ids: Vec<String>,
    },
}

fn read_password(from_stdin: bool) -> Result<String> {
    let stdin = std::io::stdin();
    if from_stdin || !stdin.is_terminal() {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .context("cannot read the password")?;
        return Ok(line.trim_end_matches(['\n', '\r']).to_string());
    }
    eprint!("password: ");
    std::io::stderr().flush().ok();
    // Turn echo off while the password is typed.
    let mut term: libc::termios = unsafe { std::mem::zeroed() };
    let have_term = unsafe { libc::tcgetattr(0, &mut term) } == 0;
    if have_term {
        let mut quiet = term;
        quiet.c_lflag &= !libc::ECHO;
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &quiet) };
    }
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if have_term {
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &term) };
    }
    eprintln!();
    read.context("cannot read the password")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "this machine".into())
}

/// `trestle login`: stores a token for the CLI in the client config.
pub async fn login(a: LoginArgs, conn: &Conn) -> Result<ExitCode> {
    let (urls, token) = endpoint(conn);
    let url = urls.join(",");
    let token = match &a.user {
        None if a.sso => {
            let token = NewToken {
                name: Some(format!("trestle login --sso on {}", host_name())),
                ttl: Some(a.ttl.clone()),
                ..NewToken::default()
            };
            let resp =
                super::sso::sso_token(urls.clone(), a.provider.as_deref(), a.port, token).await?;
            let created = resp
                .token
                .context("the server answered the sign-in without a token")?;
            eprintln!("signed in as {} ({})", resp.user.name, resp.user.role);
            created.token
        }
        Some(user) => {
            let password = read_password(a.password_stdin)?;
            let c = Client::new(urls.clone(), None)?;
            let req = LoginRequest {
                user: user.clone(),
                password,
                token: Some(NewToken {
                    name: Some(format!("trestle login on {}", host_name())),
                    ttl: Some(a.ttl.clone()),
                    ..NewToken::default()
                }),
            };
            let resp: LoginResponse = c.call(Method::POST, &["login"], &[], Some(&req)).await?;
            let created = resp
                .token
                .context("the server answered the login without a token")?;
            eprintln!(
                "logged in as {} ({}); token {} expires {}",
                resp.user.name,
                resp.user.role,
                created.info.id,
                created
                    .info
                    .expires_at
                    .map(time)
                    .unwrap_or_else(|| "never".into())
            );
            created.token
        }
        None => match token {
            Some(t) => t,
            None => {
                return usage(
                    "give --user NAME to log in with a password, or --token TOKEN (or TRESTLE_TOKEN) to store a token",
                );
            }
        },
    };
    let c = Client::new(urls, Some(token.clone()))?;
    let me: WhoAmI = c.call::<(), _>(Method::GET, &["whoami"], &[], None).await?;
    let path = save_client_file(&ClientFile {
        url: Some(url),
        token: Some(token),
    })?;
    println!(
        "logged in as {} with token {}; saved in {}",
        me.user
            .map(|u| u.name)
            .unwrap_or_else(|| "a worker credential".into()),
        me.token_id,
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `trestle whoami`.
pub async fn whoami(json: bool, conn: &Conn) -> Result<ExitCode> {
    let c = client(conn)?;
    let me: WhoAmI = c.call::<(), _>(Method::GET, &["whoami"], &[], None).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&me)?);
        return Ok(ExitCode::SUCCESS);
    }
    match &me.user {
        Some(u) => {
            println!("user:     {} ({})", u.name, u.role);
            if let Some(o) = &u.org {
                println!("org:      {o}");
            }
            println!(
                "default:  {}",
                u.default_project
                    .as_deref()
                    .unwrap_or("(no default project)")
            );
        }
        None => println!("user:     (worker credential)"),
    }
    println!("token:    {} ({})", me.token_id, me.scope.as_str());
    for m in &me.projects {
        println!("project:  {} ({})", m.project, m.role.as_str());
    }
    Ok(ExitCode::SUCCESS)
}

fn token_rows(tokens: &[TokenView]) -> String {
    let opt = |t: Option<i64>| t.map(time).unwrap_or_else(|| "-".into());
    let rows: Vec<Vec<String>> = tokens
        .iter()
        .map(|t| {
            vec![
                t.id.clone(),
                t.name.clone(),
                t.user.clone().unwrap_or_else(|| "-".into()),
                t.kind.as_str().to_string(),
                t.scope.as_str().to_string(),
                opt(t.expires_at),
                opt(t.last_used_at),
                t.last_used_ip.clone().unwrap_or_else(|| "-".into()),
                if t.revoked_at.is_some() {
                    "revoked"
                } else {
                    ""
                }
                .to_string(),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "NAME",
            "USER",
            "KIND",
            "SCOPE",
            "EXPIRES",
            "LAST USED",
            "FROM",
            "",
        ],
        &rows,
    )
}

/// `trestle token ...`.
pub async fn token(cmd: TokenCmd, conn: &Conn) -> Result<ExitCode> {
    let c = client(conn)?;
    match cmd {
        TokenCmd::Create {
            name,
            read_only,
            ttl,
            user,
            worker,
            json,
        } => {
            let req = NewToken {
                name,
                scope: read_only.then(|| "read-only".to_string()),
                ttl,
                user,
                worker,
            };
            let created: TokenCreated = c.call(Method::POST, &["tokens"], &[], Some(&req)).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&created)?);
            } else {
                eprintln!(
                    "token {} ({}, {}) expires {}; it is shown only now:",
                    created.info.id,
                    created.info.kind.as_str(),
                    created.info.scope.as_str(),
                    created
                        .info
                        .expires_at
                        .map(time)
                        .unwrap_or_else(|| "never".into())
                );
                println!("{}", created.token);
            }
        }
        TokenCmd::List { all, revoked, json } => {
            let mut q = Vec::new();
            if all {
                q.push(("all", "true"));
            }
            if revoked {
                q.push(("revoked", "true"));
            }
            let tokens: Vec<TokenView> =
                c.call::<(), _>(Method::GET, &["tokens"], &q, None).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&tokens)?);
            } else {
                print!("{}", token_rows(&tokens));
            }
        }
        TokenCmd::Revoke { ids } => {
            for id in ids {
                let t: TokenView = c
                    .call::<(), _>(Method::DELETE, &["tokens", &id], &[], None)
                    .await?;
                println!("revoked {}", t.id);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
