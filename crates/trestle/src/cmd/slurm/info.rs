//! `sinfo`, `scontrol`, `sstat`, `sacctmgr` and `sshare`: the cluster,
//! one job, a running job's use, and the (read-only) accounts tools look
//! up, as Slurm prints them. Queues are partitions, workers are nodes,
//! projects are accounts.

use super::args::{Opt, flag, parse, val};
use super::{Refused, client, me, named_jobs};
use crate::Conn;
use anyhow::Result;
use trestle_client::Method;
use trestle_core::api::compute::QueueView;
use trestle_core::api::identity::WhoAmI;
use trestle_core::batch::slurm_view as sv;

const SINFO: &[Opt] = &[
    flag(Some('h'), "noheader"),
    val(Some('o'), "format"),
    val(Some('p'), "partition"),
    flag(Some('s'), "summarize"),
    flag(Some('N'), "Node"),
    flag(Some('l'), "long"),
    flag(Some('a'), "all"),
    val(Some('M'), "clusters"),
];

/// `sinfo`: each queue as a partition, the live workers as its nodes.
pub async fn sinfo(args: &[String], conn: &Conn) -> Result<u8> {
    let p = parse("sinfo", args, SINFO, false)?;
    let c = client(conn)?;
    let queues: Vec<QueueView> = c.call::<(), _>(Method::GET, &["queues"], &[], None).await?;
    let workers = c.list_workers().await?;
    let wanted = p.list("partition");
    let format = p
        .value("format")
        .unwrap_or("%9P %5a %10l %6D %6t %N")
        .to_string();
    let mut out = String::new();
    let node_list = workers
        .iter()
        .map(|w| w.id.clone())
        .collect::<Vec<_>>()
        .join(",");
    let state = if workers.is_empty() {
        "idle~"
    } else if workers.iter().all(|w| w.running_jobs.is_empty()) {
        "idle"
    } else if workers.iter().all(|w| !w.running_jobs.is_empty()) {
        "alloc"
    } else {
        "mix"
    };
    let cpus: u32 = workers.iter().map(|w| w.capacity.cpus).sum();
    let mem: u64 = workers.iter().map(|w| w.capacity.mem_mib).sum();
    let render = |name: Option<&str>| -> Result<String> {
        let mut s = String::new();
        let chars: Vec<char> = format.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            if chars[i] != '%' {
                s.push(chars[i]);
                i += 1;
                continue;
            }
            i += 1;
            let right = chars.get(i) == Some(&'.');
            if right {
                i += 1;
            }
            let mut w = String::new();
            while i < chars.len() && chars[i].is_ascii_digit() {
                w.push(chars[i]);
                i += 1;
            }
            let Some(&code) = chars.get(i) else { break };
            i += 1;
            let v = match (code, name) {
                ('P', None) => "PARTITION".into(),
                ('a', None) => "AVAIL".into(),
                ('l', None) => "TIMELIMIT".into(),
                ('D', None) => "NODES".into(),
                ('t', None) | ('T', None) => "STATE".into(),
                ('N', None) => "NODELIST".into(),
                ('c', None) | ('C', None) => "CPUS".into(),
                ('m', None) => "MEMORY".into(),
                ('R', None) => "PARTITION".into(),
                ('P', Some(n)) => {
                    if n == "default" {
                        "default*".into()
                    } else {
                        n.to_string()
                    }
                }
                ('R', Some(n)) => n.to_string(),
                ('a', Some(_)) => "up".into(),
                ('l', Some(_)) => "infinite".into(),
                ('D', Some(_)) => workers.len().to_string(),
                ('t', Some(_)) | ('T', Some(_)) => state.into(),
                ('N', Some(_)) => node_list.clone(),
                ('c', Some(_)) | ('C', Some(_)) => cpus.to_string(),
                ('m', Some(_)) => mem.to_string(),
                (other, _) => {
                    return Err(
                        Refused(format!("sinfo format code `%{other}` is not supported")).into(),
                    );
                }
            };
            let width: Option<usize> = w.parse().ok();
            s.push_str(&match width {
                Some(w) if right => format!("{v:>w$}"),
                Some(w) => format!("{v:<w$}"),
                None => v,
            });
        }
        Ok(s.trim_end().to_string())
    };
    if !p.has("noheader") {
        out.push_str(&render(None)?);
        out.push('\n');
    }
    for q in &queues {
        if wanted.is_empty() || wanted.contains(&q.spec.name) {
            out.push_str(&render(Some(&q.spec.name))?);
            out.push('\n');
        }
    }
    print!("{out}");
    Ok(0)
}

/// `scontrol show job|partition|node`; the changes (`hold`, `release`,
/// `requeue`, `update`) are refused until Trestle can make them.
pub async fn scontrol(args: &[String], conn: &Conn) -> Result<u8> {
    let words: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|w| !matches!(*w, "-o" | "--oneliner" | "-d" | "--details"))
        .collect();
    let oneliner = args.iter().any(|a| a == "-o" || a == "--oneliner");
    if let Some(w) = args.iter().find(|a| {
        a.starts_with('-') && !matches!(a.as_str(), "-o" | "--oneliner" | "-d" | "--details")
    }) {
        return Err(Refused(format!("unrecognized option '{w}'")).into());
    }
    let c = client(conn)?;
    let sep = if oneliner { " " } else { "\n   " };
    match words.as_slice() {
        ["show", "job" | "jobs", rest @ ..] => {
            let jobs = match rest.first() {
                Some(id) => named_jobs(&c, id).await?,
                None => super::all_jobs(
                    &c,
                    trestle_client::JobQuery {
                        states: super::active_states(),
                        ..Default::default()
                    },
                )
                .await?,
            };
            if jobs.is_empty() {
                return Err(Refused("Invalid job id specified".into()).into());
            }
            let now = trestle_server::now_ms();
            for j in jobs.iter().filter(|j| j.flow.kind.is_job()) {
                let kv = [
                    format!("JobId={} JobName={}", j.id, j.name),
                    format!("UserId={} Account={}", sv::user(j), j.spec.project.clone().unwrap_or_default()),
                    format!(
                        "JobState={} Reason={} Dependency=(null)",
                        sv::state_name(j),
                        sv::pending_reason(j)
                    ),
                    format!(
                        "RunTime={} TimeLimit={}",
                        sv::long_duration(sv::elapsed_ms(j, now)),
                        sv::time_limit(j)
                    ),
                    format!(
                        "SubmitTime={} StartTime={} EndTime={}",
                        sv::timestamp(j.submitted_at),
                        sv::timestamp_or_unknown(j.started_at),
                        sv::timestamp_or_unknown(j.finished_at)
                    ),
                    format!(
                        "Partition={} NodeList={}",
                        j.queue,
                        j.worker.clone().unwrap_or_else(|| "(null)".into())
                    ),
                    format!(
                        "NumNodes=1 NumCPUs={} NumTasks=1 CPUs/Task={}",
                        j.spec.resources.cpus, j.spec.resources.cpus
                    ),
                    format!("MinMemoryNode={}", sv::mem(j.spec.resources.mem_mib)),
                    format!("ExitCode={}", sv::exit_code(j)),
                    format!(
                        "WorkDir={}",
                        sv::sacct_field("WorkDir", j, None, now).unwrap_or_default()
                    ),
                ];
                let mut line = kv.join(sep);
                if let (Some(p), Some(i)) = (j.flow.parent, j.flow.array_index) {
                    line = format!("{line}{sep}ArrayJobId={p} ArrayTaskId={i}");
                }
                println!("{line}\n");
            }
            Ok(0)
        }
        ["show", "partition" | "partitions", rest @ ..] => {
            let queues: Vec<QueueView> = c.call::<(), _>(Method::GET, &["queues"], &[], None).await?;
            let workers = c.list_workers().await?;
            let mut found = false;
            for q in queues.iter().filter(|q| rest.first().is_none_or(|n| *n == q.spec.name)) {
                found = true;
                let nodes = workers.iter().map(|w| w.id.clone()).collect::<Vec<_>>().join(",");
                println!(
                    "PartitionName={}{sep}AllowGroups=ALL Default={} State=UP{sep}Nodes={}{sep}PriorityTier={} TotalNodes={} TotalCPUs={}\n",
                    q.spec.name,
                    if q.spec.name == "default" { "YES" } else { "NO" },
                    if nodes.is_empty() { "(null)".into() } else { nodes },
                    q.spec.priority,
                    workers.len(),
                    workers.iter().map(|w| w.capacity.cpus).sum::<u32>()
                );
            }
            if !found {
                return Err(Refused("Partition not found".into()).into());
            }
            Ok(0)
        }
        ["show", "node" | "nodes", rest @ ..] => {
            let workers = c.list_workers().await?;
            for w in workers.iter().filter(|w| rest.first().is_none_or(|n| *n == w.id)) {
                println!(
                    "NodeName={} NodeHostName={}{sep}CPUTot={} RealMemory={} Gres={}{sep}State={}\n",
                    w.id,
                    w.host,
                    w.capacity.cpus,
                    w.capacity.mem_mib,
                    if w.capacity.gpus > 0 { format!("gpu:{}", w.capacity.gpus) } else { "(null)".into() },
                    if w.running_jobs.is_empty() { "IDLE" } else { "MIXED" }
                );
            }
            Ok(0)
        }
        ["show", "config"] => {
            // The settings tools read (MaxArraySize, MinJobAge), with
            // Trestle's values.
            println!(
                "Configuration data as of {}",
                sv::timestamp(trestle_server::now_ms())
            );
            let max_index = trestle_core::batch::array::MAX_ARRAY_INDEX;
            for (k, v) in [
                ("ClusterName", "trestle".to_string()),
                ("MaxArraySize", (max_index + 1).to_string()),
                (
                    "MaxJobCount",
                    trestle_core::batch::array::MAX_ARRAY_SIZE.to_string(),
                ),
                // Ended jobs leave squeue at once; sacct keeps them.
                ("MinJobAge", "0 sec".to_string()),
                ("SchedulerType", "trestle".to_string()),
                ("SLURM_VERSION", format!("trestle-{}", env!("CARGO_PKG_VERSION"))),
            ] {
                println!("{k:<23} = {v}");
            }
            Ok(0)
        }
        [verb @ ("hold" | "release" | "requeue" | "update" | "suspend" | "resume"), ..] => Err(Refused(format!(
            "scontrol {verb} is not supported by Trestle yet (cancel with scancel, resubmit with `trestle resubmit`)"
        ))
        .into()),
        _ => Err(Refused(format!(
            "scontrol {}: only `show job|partition|node|config` is supported",
            words.join(" ")
        ))
        .into()),
    }
}

const SSTAT: &[Opt] = &[
    val(Some('j'), "jobs"),
    val(Some('o'), "format"),
    flag(Some('n'), "noheader"),
    flag(Some('P'), "parsable2"),
    flag(Some('p'), "parsable"),
    flag(Some('a'), "allsteps"),
];

/// `sstat -j ID`: a running job's use from its resource samples.
pub async fn sstat(args: &[String], conn: &Conn) -> Result<u8> {
    let p = parse("sstat", args, SSTAT, false)?;
    let Some(list) = p.value("jobs").or(p.rest.first().map(String::as_str)) else {
        return Err(Refused("No job id specified (sstat -j ID)".into()).into());
    };
    let c = client(conn)?;
    let fields: Vec<String> = p
        .value("format")
        .unwrap_or("JobID,MaxRSS,AveRSS,AveCPU,NTasks")
        .split(',')
        .map(|f| f.split('%').next().unwrap_or(f).trim().to_string())
        .collect();
    let parsable = p.has("parsable2") || p.has("parsable");
    let delim = if parsable { "|" } else { " " };
    if !p.has("noheader") {
        println!("{}", fields.join(delim));
    }
    for j in named_jobs(&c, list).await? {
        if !j.state.is_leased() || !j.flow.kind.is_job() {
            continue;
        }
        let s: trestle_core::api::samples::JobSamples = c
            .call::<(), _>(
                Method::GET,
                &["jobs", &j.id.to_string(), "samples"],
                &[],
                None,
            )
            .await?;
        let rss: Vec<u64> = s.samples.iter().map(|x| x.rss_kib).collect();
        let max = rss.iter().max().copied().unwrap_or(0);
        let ave = if rss.is_empty() {
            0
        } else {
            rss.iter().sum::<u64>() / rss.len() as u64
        };
        let cpu = s.samples.last().map(|x| x.cpu_pct).unwrap_or(0.0);
        let mut cells = Vec::new();
        for f in &fields {
            cells.push(match f.to_ascii_lowercase().as_str() {
                "jobid" => format!("{}.batch", sv::job_id(&j)),
                "maxrss" => format!("{max}K"),
                "averss" => format!("{ave}K"),
                "avecpu" => format!("{cpu:.1}%"),
                "ntasks" => "1".into(),
                "nodelist" | "maxrssnode" => j.worker.clone().unwrap_or_default(),
                other => {
                    return Err(Refused(format!("Invalid field requested: \"{other}\"")).into());
                }
            });
        }
        println!("{}", cells.join(delim));
    }
    Ok(0)
}

/// `sacctmgr show|list user|account|association`: read-only, from the
/// caller's own account and projects.
pub async fn sacctmgr(args: &[String], conn: &Conn) -> Result<u8> {
    let mut flags = Vec::new();
    let mut words = Vec::new();
    for a in args {
        if let Some(f) = a.strip_prefix('-') {
            for c in f.chars() {
                match c {
                    'n' | 'P' | 'p' | 's' | 'i' | 'Q' => flags.push(c),
                    _ => return Err(Refused(format!("unrecognized option '-{c}'")).into()),
                }
            }
        } else {
            words.push(a.as_str());
        }
    }
    let (verb, entity, rest) = match words.as_slice() {
        [v, e, rest @ ..] => (*v, e.to_ascii_lowercase(), rest.to_vec()),
        _ => {
            return Err(Refused(
                "usage: sacctmgr show user|account|association [format=...]".into(),
            )
            .into());
        }
    };
    if !matches!(verb, "show" | "list") {
        return Err(Refused(format!(
            "sacctmgr {verb}: Trestle's sacctmgr is read-only (projects and members are managed with `trestle project`)"
        ))
        .into());
    }
    let mut format: Option<Vec<String>> = None;
    let mut user_filter: Option<String> = None;
    for w in rest {
        if w.eq_ignore_ascii_case("where") || w.eq_ignore_ascii_case("withassoc") {
            continue;
        }
        match w.split_once('=') {
            Some((k, v)) if k.eq_ignore_ascii_case("format") => {
                format = Some(
                    v.split(',')
                        .map(|f| f.split('%').next().unwrap_or(f).to_string())
                        .collect(),
                )
            }
            Some((k, v))
                if k.eq_ignore_ascii_case("user")
                    || k.eq_ignore_ascii_case("users")
                    || k.eq_ignore_ascii_case("name") =>
            {
                user_filter = Some(v.to_string())
            }
            Some((k, _))
                if k.eq_ignore_ascii_case("cluster")
                    || k.eq_ignore_ascii_case("account")
                    || k.eq_ignore_ascii_case("accounts") => {}
            _ => user_filter = Some(w.to_string()),
        }
    }
    let c = client(conn)?;
    let who: WhoAmI = c.call::<(), _>(Method::GET, &["whoami"], &[], None).await?;
    let me_name = who
        .user
        .as_ref()
        .map(|u| u.name.clone())
        .unwrap_or_default();
    let default_account = who
        .user
        .as_ref()
        .and_then(|u| u.default_project.clone())
        .unwrap_or_default();
    // The caller may name themselves by their Trestle name or by the Unix
    // account they run the tool as.
    let unix = std::env::var("USER").unwrap_or_default();
    let mine = user_filter
        .as_deref()
        .is_none_or(|u| u == me_name || (!unix.is_empty() && u == unix));
    let with_assoc = flags.contains(&'s') || entity.starts_with("assoc");
    let fields: Vec<String> = format.unwrap_or_else(|| match entity.as_str() {
        "user" | "users" if with_assoc => {
            vec!["User".into(), "DefaultAccount".into(), "Account".into()]
        }
        "user" | "users" => vec!["User".into(), "DefaultAccount".into(), "Admin".into()],
        "account" | "accounts" => vec!["Account".into(), "Descr".into(), "Org".into()],
        _ => vec!["Cluster".into(), "Account".into(), "User".into()],
    });
    let mut rows: Vec<Vec<String>> = Vec::new();
    let projects: Vec<(String, String)> = who
        .projects
        .iter()
        .map(|m| (m.project.clone(), m.org.clone().unwrap_or_default()))
        .collect();
    let admin = if who
        .user
        .as_ref()
        .is_some_and(|u| u.role == trestle_core::identity::authz::Role::Admin)
    {
        "Administrator"
    } else {
        "None"
    };
    let cell = |f: &str, account: &str, org: &str| -> Result<String> {
        Ok(match f.to_ascii_lowercase().as_str() {
            "user" => me_name.clone(),
            "defaultaccount" | "defaultacct" => default_account.clone(),
            "account" => account.to_string(),
            "admin" | "adminlevel" => admin.into(),
            "descr" | "description" => account.to_string(),
            "org" | "organization" => org.to_string(),
            "cluster" => "trestle".into(),
            "share" | "fairshare" => "1".into(),
            "qos" => "normal".into(),
            "defaultqos" => "normal".into(),
            other => return Err(Refused(format!("Unknown field '{other}'")).into()),
        })
    };
    if mine {
        match (entity.as_str(), with_assoc) {
            ("user" | "users", false) => rows.push(
                fields
                    .iter()
                    .map(|f| cell(f, &default_account, ""))
                    .collect::<Result<_>>()?,
            ),
            _ => {
                for (acct, org) in &projects {
                    rows.push(
                        fields
                            .iter()
                            .map(|f| cell(f, acct, org))
                            .collect::<Result<_>>()?,
                    );
                }
            }
        }
    }
    let parsable = flags.contains(&'P') || flags.contains(&'p');
    if !flags.contains(&'n') {
        println!(
            "{}",
            if parsable {
                fields.join("|")
            } else {
                fields
                    .iter()
                    .map(|f| format!("{f:>10}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            }
        );
    }
    for r in rows {
        println!(
            "{}",
            if parsable {
                r.join("|")
            } else {
                r.iter()
                    .map(|f| format!("{f:>10}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            }
        );
    }
    Ok(0)
}

/// `sshare`: the caller's accounts. Trestle has no fair-share, so every
/// account has one share and a fair-share factor of 1.
pub async fn sshare(args: &[String], conn: &Conn) -> Result<u8> {
    let allowed = [
        "-U",
        "--Users",
        "-h",
        "--noheader",
        "-P",
        "--parsable2",
        "-p",
        "--parsable",
        "-l",
        "--long",
    ];
    let mut skip = false;
    for (i, a) in args.iter().enumerate() {
        if skip {
            skip = false;
            continue;
        }
        if matches!(
            a.as_str(),
            "-u" | "--users" | "-A" | "--accounts" | "-M" | "--clusters"
        ) {
            skip = true;
            continue;
        }
        if a.starts_with("--users=") || a.starts_with("--accounts=") || a.starts_with("--clusters=")
        {
            continue;
        }
        if !allowed.contains(&a.as_str()) {
            return Err(Refused(format!("unrecognized option '{}'", args[i])).into());
        }
    }
    let c = client(conn)?;
    let who: WhoAmI = c.call::<(), _>(Method::GET, &["whoami"], &[], None).await?;
    let user = me(&c).await?;
    let noheader = args.iter().any(|a| a == "-h" || a == "--noheader");
    let parsable = args
        .iter()
        .any(|a| a.starts_with("-P") || a.starts_with("--parsable") || a == "-p");
    let n = who.projects.len().max(1) as f64;
    let header = [
        "Account",
        "User",
        "RawShares",
        "NormShares",
        "RawUsage",
        "EffectvUsage",
        "FairShare",
    ];
    let join = |cells: Vec<String>| {
        if parsable {
            cells.join("|")
        } else {
            cells
                .iter()
                .map(|c| format!("{c:>12}"))
                .collect::<Vec<_>>()
                .join(" ")
        }
    };
    if !noheader {
        println!("{}", join(header.iter().map(|h| h.to_string()).collect()));
    }
    for m in &who.projects {
        println!(
            "{}",
            join(vec![
                m.project.clone(),
                user.clone(),
                "1".into(),
                format!("{:.6}", 1.0 / n),
                "0".into(),
                "0.000000".into(),
                "1.000000".into(),
            ])
        );
    }
    Ok(0)
}
