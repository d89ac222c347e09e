//! `squeue`, `sacct` and `scancel` as Slurm prints and takes them.

use super::args::{Opt, Parsed, flag, parse, val};
use super::{Refused, active_states, all_jobs, client, me, named_jobs};
use crate::Conn;
use anyhow::Result;
use trestle_client::{Client, JobQuery};
use trestle_core::JobState;
use trestle_core::api::JobView;
use trestle_core::batch::slurm_view as sv;
use trestle_core::batch::workflow::JobKind;

const SQUEUE: &[Opt] = &[
    flag(Some('h'), "noheader"),
    val(Some('o'), "format"),
    val(Some('O'), "Format"),
    flag(None, "me"),
    val(Some('u'), "user"),
    val(Some('j'), "jobs"),
    val(Some('t'), "states"),
    val(Some('n'), "name"),
    val(Some('p'), "partition"),
    val(Some('A'), "account"),
    flag(Some('r'), "array"),
    flag(Some('a'), "all"),
    flag(Some('l'), "long"),
    val(Some('M'), "clusters"),
    flag(None, "noconvert"),
];

/// The default format, Slurm's.
const DEFAULT_FORMAT: &str = "%.18i %.9P %.8j %.8u %.2t %.10M %.6D %R";
const LONG_FORMAT: &str = "%.18i %.9P %.8j %.8u %.8T %.10M %.9l %.6D %R";

/// One piece of a `-o` format.
#[derive(Debug, PartialEq)]
enum Piece {
    Text(String),
    Field {
        code: char,
        width: Option<usize>,
        right: bool,
    },
}

fn parse_format(f: &str) -> Result<Vec<Piece>> {
    let mut out = Vec::new();
    let chars: Vec<char> = f.chars().collect();
    let mut i = 0;
    let mut text = String::new();
    while i < chars.len() {
        if chars[i] != '%' {
            text.push(chars[i]);
            i += 1;
            continue;
        }
        if chars.get(i + 1) == Some(&'%') {
            text.push('%');
            i += 2;
            continue;
        }
        if !text.is_empty() {
            out.push(Piece::Text(std::mem::take(&mut text)));
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
        let Some(&code) = chars.get(i) else {
            return Err(Refused(format!("format `{f}` ends inside a field")).into());
        };
        i += 1;
        out.push(Piece::Field {
            code,
            width: w.parse().ok(),
            right,
        });
    }
    if !text.is_empty() {
        out.push(Piece::Text(text));
    }
    Ok(out)
}

/// `-O JobID:10,Name` as pieces (each left-justified, default width 20,
/// then a space).
fn parse_long_format(f: &str) -> Result<Vec<Piece>> {
    let mut out = Vec::new();
    for item in f.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, width) = match item.split_once(':') {
            Some((n, w)) => (n, w.trim_start_matches('.').parse().ok()),
            None => (item, None),
        };
        let Some(code) = sv::squeue_long_field(name) else {
            return Err(Refused(format!("squeue -O field `{name}` is not supported")).into());
        };
        out.push(Piece::Field {
            code,
            width: Some(width.unwrap_or(20)),
            right: false,
        });
        out.push(Piece::Text(" ".into()));
    }
    Ok(out)
}

fn header_of(code: char) -> &'static str {
    match code {
        'i' | 'A' => "JOBID",
        'F' => "ARRAY_JOB_ID",
        'K' => "ARRAY_TASK_ID",
        'a' => "ACCOUNT",
        'j' => "NAME",
        'u' => "USER",
        'P' => "PARTITION",
        'q' => "QOS",
        't' => "ST",
        'T' => "STATE",
        'M' => "TIME",
        'l' => "TIME_LIMIT",
        'L' => "TIME_LEFT",
        'D' => "NODES",
        'C' => "CPUS",
        'c' => "MIN_CPUS",
        'm' => "MIN_MEMORY",
        'b' => "TRES_PER_NODE",
        'R' => "NODELIST(REASON)",
        'r' => "REASON",
        'N' => "NODELIST",
        'V' => "SUBMIT_TIME",
        'S' => "START_TIME",
        'e' => "END_TIME",
        'o' => "COMMAND",
        'Z' => "WORK_DIR",
        'Q' | 'p' => "PRIORITY",
        'E' => "DEPENDENCY",
        _ => "FIELD",
    }
}

fn pad(s: &str, width: Option<usize>, right: bool) -> String {
    match width {
        None => s.to_string(),
        Some(w) => {
            let cut: String = s.chars().take(w).collect();
            if right {
                format!("{cut:>w$}")
            } else {
                format!("{cut:<w$}")
            }
        }
    }
}

fn render(pieces: &[Piece], j: Option<&JobView>, now: i64) -> Result<String> {
    let mut s = String::new();
    for p in pieces {
        match p {
            Piece::Text(t) => s.push_str(t),
            Piece::Field { code, width, right } => {
                let v = match j {
                    None => header_of(*code).to_string(),
                    Some(j) => sv::squeue_field(*code, j, now).ok_or_else(|| {
                        Refused(format!("squeue format code `%{code}` is not supported"))
                    })?,
                };
                s.push_str(&pad(&v, *width, *right));
            }
        }
    }
    Ok(s.trim_end().to_string())
}

/// The rows squeue shows for these jobs: plain jobs and array children as
/// they are; an array's children not created yet as one `ID_[...]` line;
/// group parents otherwise not at all.
fn squeue_rows(jobs: Vec<JobView>) -> Vec<JobView> {
    let mut out = Vec::new();
    for mut j in jobs {
        match j.flow.kind {
            JobKind::Job => out.push(j),
            JobKind::Pipeline => {}
            JobKind::Array => {
                let (Some(a), Some(c)) = (j.spec.flow.array.clone(), j.flow.children.as_ref())
                else {
                    continue;
                };
                if j.state.is_terminal() || c.created >= c.total {
                    continue;
                }
                let rest: Vec<u32> = (c.created..c.total).filter_map(|k| a.index_at(k)).collect();
                let mut pending = a.clone();
                if let Ok(p) = trestle_core::batch::array::ArraySpec::parse(
                    "array",
                    &trestle_core::batch::array::compress(&rest),
                ) {
                    pending.segments = p.segments;
                }
                j.spec.flow.array = Some(pending);
                if j.state == JobState::Running {
                    j.state = JobState::Runnable;
                    j.started_at = None;
                }
                if j.reason.is_none()
                    && let Some(p) = a.parallel
                {
                    j.reason = Some(format!("array parallel limit: %{p}"));
                }
                out.push(j);
            }
        }
    }
    out
}

/// The jobs a command's filters select (`-t`, `-u`/`--me`, `-n`, `-p`,
/// `-A`); an empty list selects all.
struct Selection {
    states: Vec<JobState>,
    users: Vec<String>,
    names: Vec<String>,
    parts: Vec<String>,
    accounts: Vec<String>,
}

impl Selection {
    /// Reads the filters; `state` and `account` name the options, which
    /// differ between the commands.
    async fn read(p: &Parsed, c: &Client, state: &str, account: &str) -> Result<Selection> {
        let mut states = Vec::new();
        for s in p.list(state) {
            match sv::parse_state(&s) {
                Some(v) => states.extend(v),
                None => return Err(Refused(format!("Invalid job state specified: {s}")).into()),
            }
        }
        let mut users = p.list("user");
        if p.has("me") {
            users.push(me(c).await?);
        }
        Ok(Selection {
            states,
            users,
            names: p.list("name"),
            parts: p.list("partition"),
            accounts: p.list(account),
        })
    }

    fn matches(&self, j: &JobView) -> bool {
        (self.states.is_empty() || self.states.contains(&j.state))
            && (self.users.is_empty() || self.users.contains(&sv::user(j)))
            && (self.names.is_empty() || self.names.contains(&j.name))
            && (self.parts.is_empty() || self.parts.contains(&j.queue))
            && (self.accounts.is_empty()
                || j.spec
                    .project
                    .as_ref()
                    .is_some_and(|a| self.accounts.contains(a)))
    }

    /// The server-side query for one name and one partition.
    fn query(&self, states: Vec<JobState>) -> JobQuery {
        JobQuery {
            states,
            queue: (self.parts.len() == 1).then(|| self.parts[0].clone()),
            name: (self.names.len() == 1).then(|| self.names[0].clone()),
            ..Default::default()
        }
    }
}

/// `squeue`.
pub async fn squeue(args: &[String], conn: &Conn) -> Result<u8> {
    let p = parse("squeue", args, SQUEUE, false)?;
    if let Some(w) = p.rest.first() {
        return Err(Refused(format!("unrecognized argument '{w}'")).into());
    }
    let pieces = match (p.value("format"), p.value("Format")) {
        (Some(f), _) => parse_format(f)?,
        (None, Some(f)) => parse_long_format(f)?,
        (None, None) if p.has("long") => parse_format(LONG_FORMAT)?,
        (None, None) => parse_format(DEFAULT_FORMAT)?,
    };
    let c = client(conn)?;
    let mut sel = Selection::read(&p, &c, "states", "account").await?;
    if sel.states.is_empty() {
        sel.states = active_states();
    }
    let jobs = match p.value("jobs") {
        Some(list) => named_jobs(&c, list).await?,
        None => {
            // An array's pending part is its RUNNING parent's `ID_[...]`
            // line: fetch running rows too, and filter after.
            let mut fetch = sel.states.clone();
            if !fetch.contains(&JobState::Running) {
                fetch.push(JobState::Running);
            }
            all_jobs(&c, sel.query(fetch)).await?
        }
    };
    let mut rows: Vec<JobView> = squeue_rows(jobs)
        .into_iter()
        .filter(|j| sel.matches(j))
        .collect();
    // Running first, then pending, each oldest first (Slurm sorts by state
    // and priority).
    rows.sort_by_key(|j| (!j.state.is_leased(), j.id));
    let now = trestle_server::now_ms();
    let mut out = String::new();
    if !p.has("noheader") {
        out.push_str(&render(&pieces, None, now)?);
        out.push('\n');
    }
    for j in &rows {
        out.push_str(&render(&pieces, Some(j), now)?);
        out.push('\n');
    }
    print!("{out}");
    Ok(0)
}

const SACCT: &[Opt] = &[
    val(Some('j'), "jobs"),
    flag(Some('X'), "allocations"),
    flag(Some('n'), "noheader"),
    flag(Some('P'), "parsable2"),
    flag(Some('p'), "parsable"),
    val(None, "delimiter"),
    val(Some('o'), "format"),
    val(Some('S'), "starttime"),
    val(Some('E'), "endtime"),
    val(None, "name"),
    val(Some('u'), "user"),
    val(Some('s'), "state"),
    flag(Some('a'), "allusers"),
    flag(Some('b'), "brief"),
    flag(Some('L'), "allclusters"),
    val(Some('M'), "clusters"),
    flag(Some('D'), "duplicates"),
    val(Some('r'), "partition"),
    val(Some('A'), "accounts"),
    flag(None, "noconvert"),
    val(None, "units"),
];

const SACCT_DEFAULT: &str = "JobID,JobName,Partition,Account,AllocCPUS,State,ExitCode";
const SACCT_BRIEF: &str = "JobID,State,ExitCode";

fn default_width(field: &str) -> usize {
    match field.to_ascii_lowercase().as_str() {
        "jobid" | "jobidraw" => 12,
        "exitcode" => 8,
        "start" | "end" | "submit" => 19,
        "alloctres" | "reqtres" => 30,
        "nodelist" => 15,
        _ => 10,
    }
}

/// A time argument of `-S`/`-E`: `now`, `now-1hour`-style offsets,
/// `YYYY-MM-DD[THH:MM[:SS]]`, or `HH:MM[:SS]` today (UTC).
fn parse_time(s: &str, now: i64) -> Result<i64> {
    let t = s.trim();
    if let Some(rest) = t.strip_prefix("now") {
        if rest.is_empty() {
            return Ok(now);
        }
        let Some(off) = rest.strip_prefix('-') else {
            return Err(Refused(format!("Invalid time specification: {s}")).into());
        };
        let digits: String = off.chars().take_while(|c| c.is_ascii_digit()).collect();
        let unit = &off[digits.len()..];
        let n: i64 = digits
            .parse()
            .map_err(|_| Refused(format!("Invalid time specification: {s}")))?;
        let secs = match unit {
            "" | "seconds" | "second" => n,
            "minutes" | "minute" => n * 60,
            "hours" | "hour" => n * 3600,
            "days" | "day" => n * 86_400,
            "weeks" | "week" => n * 7 * 86_400,
            _ => return Err(Refused(format!("Invalid time specification: {s}")).into()),
        };
        return Ok(now - secs * 1000);
    }
    let day_ms = 86_400_000;
    let (date, time) = match t.split_once('T') {
        Some((d, tm)) => (Some(d), Some(tm)),
        None if t.contains('-') => (Some(t), None),
        None => (None, Some(t)),
    };
    let day_start = match date {
        Some(d) => match trestle_core::cost::daily::parse_date(d) {
            Some(day) => day * day_ms,
            None => return Err(Refused(format!("Invalid time specification: {s}")).into()),
        },
        None => now.div_euclid(day_ms) * day_ms,
    };
    let offset = match time {
        Some(tm) => {
            let nums: Option<Vec<i64>> = tm.split(':').map(|p| p.parse().ok()).collect();
            match nums.as_deref() {
                Some([h, m]) => (h * 3600 + m * 60) * 1000,
                Some([h, m, sec]) => (h * 3600 + m * 60 + sec) * 1000,
                _ => return Err(Refused(format!("Invalid time specification: {s}")).into()),
            }
        }
        None => 0,
    };
    Ok(day_start + offset)
}

/// `sacct`.
pub async fn sacct(args: &[String], conn: &Conn) -> Result<u8> {
    let p = parse("sacct", args, SACCT, false)?;
    if let Some(w) = p.rest.first() {
        return Err(Refused(format!("unrecognized argument '{w}'")).into());
    }
    let format = p.value("format").map(str::to_string).unwrap_or_else(|| {
        if p.has("brief") {
            SACCT_BRIEF.into()
        } else {
            SACCT_DEFAULT.into()
        }
    });
    // `Name%20`: a field and its width.
    let fields: Vec<(String, usize)> = format
        .split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(|f| match f.split_once('%') {
            Some((n, w)) => (n.to_string(), w.parse().unwrap_or(default_width(n))),
            None => (f.to_string(), default_width(f)),
        })
        .collect();
    let now = trestle_server::now_ms();
    let c = client(conn)?;
    let mut sel = Selection::read(&p, &c, "state", "accounts").await?;
    let start = match p.value("starttime") {
        Some(t) => Some(parse_time(t, now)?),
        // Without -j, Slurm's default window starts at midnight today.
        None if p.value("jobs").is_none() => Some(now.div_euclid(86_400_000) * 86_400_000),
        None => None,
    };
    let end = match p.value("endtime") {
        Some(t) => Some(parse_time(t, now)?),
        None => None,
    };
    let jobs = match p.value("jobs") {
        Some(list) => named_jobs(&c, list).await?,
        None => {
            if sel.users.is_empty() && !p.has("allusers") {
                sel.users.push(me(&c).await?);
            }
            all_jobs(&c, sel.query(Vec::new())).await?
        }
    };
    let keep = |j: &JobView| {
        sel.matches(j)
            && start.is_none_or(|s| j.finished_at.is_none_or(|f| f >= s))
            && end.is_none_or(|e| j.submitted_at <= e)
    };
    let mut rows: Vec<(JobView, Option<&str>)> = Vec::new();
    for j in squeue_or_children(jobs).into_iter().filter(keep) {
        let started = j.started_at.is_some();
        let plain = j.flow.kind.is_job();
        rows.push((j.clone(), None));
        if plain && started && !p.has("allocations") {
            rows.push((j, Some("batch")));
        }
    }
    let parsable = p.has("parsable2") || p.has("parsable");
    let delim = p.value("delimiter").unwrap_or("|").to_string();
    let trailing = p.has("parsable") && !p.has("parsable2");
    let mut out = String::new();
    let line = |cells: Vec<String>| -> String {
        if parsable {
            let mut l = cells.join(&delim);
            if trailing {
                l.push_str(&delim);
            }
            l
        } else {
            cells
                .iter()
                .zip(&fields)
                .map(|(c, (_, w))| pad_sacct(c, *w))
                .collect::<Vec<_>>()
                .join(" ")
        }
    };
    if !p.has("noheader") {
        out.push_str(&line(fields.iter().map(|(n, _)| n.clone()).collect()));
        out.push('\n');
        if !parsable {
            out.push_str(
                &fields
                    .iter()
                    .map(|(_, w)| "-".repeat(*w))
                    .collect::<Vec<_>>()
                    .join(" "),
            );
            out.push('\n');
        }
    }
    for (j, step) in &rows {
        let mut cells = Vec::new();
        for (name, _) in &fields {
            let v = sv::sacct_field(name, j, *step, now)
                .ok_or_else(|| Refused(format!("Invalid field requested: \"{name}\"")))?;
            cells.push(v);
        }
        out.push_str(&line(cells));
        out.push('\n');
    }
    print!("{out}");
    Ok(0)
}

/// sacct's rows: plain jobs and children; an array's uncreated children as
/// one pending `ID_[...]` line, as squeue shows them; group parents not
/// otherwise.
fn squeue_or_children(jobs: Vec<JobView>) -> Vec<JobView> {
    let mut out = Vec::new();
    for j in jobs {
        if j.flow.kind.is_job() {
            out.push(j);
        } else {
            out.extend(squeue_rows(vec![j]));
        }
    }
    out
}

fn pad_sacct(s: &str, w: usize) -> String {
    let n = s.chars().count();
    if n > w {
        let mut cut: String = s.chars().take(w.saturating_sub(1)).collect();
        cut.push('+');
        cut
    } else {
        format!("{s:>w$}")
    }
}

const SCANCEL: &[Opt] = &[
    val(Some('n'), "name"),
    val(Some('t'), "state"),
    val(Some('p'), "partition"),
    val(Some('u'), "user"),
    flag(None, "me"),
    val(Some('A'), "account"),
    flag(Some('f'), "full"),
    flag(Some('b'), "batch"),
    flag(Some('Q'), "quiet"),
    flag(Some('v'), "verbose"),
    val(Some('s'), "signal"),
    val(Some('M'), "clusters"),
];

/// `scancel`.
pub async fn scancel(args: &[String], conn: &Conn) -> Result<u8> {
    let p = parse("scancel", args, SCANCEL, false)?;
    if let Some(sig) = p.value("signal") {
        let s = sig.trim_start_matches("SIG").to_ascii_uppercase();
        if !matches!(s.as_str(), "TERM" | "KILL" | "INT" | "15" | "9" | "2") {
            return Err(Refused(format!(
                "--signal={sig}: only TERM, INT and KILL (which cancel the job) are supported"
            ))
            .into());
        }
    }
    let c = client(conn)?;
    let mut code = 0;
    let mut ids = Vec::new();
    for w in p
        .rest
        .iter()
        .flat_map(|w| w.split(','))
        .filter(|w| !w.is_empty())
    {
        let w = w.split('.').next().unwrap_or(w);
        match super::super::jobref::resolve(&c, w).await {
            Ok(id) => ids.push((w.to_string(), id)),
            Err(_) => {
                eprintln!("scancel: error: Kill job error on job id {w}: Invalid job id specified");
                code = 1;
            }
        }
    }
    let filtering = p.has("name")
        || p.has("state")
        || p.has("partition")
        || p.has("user")
        || p.has("me")
        || p.has("account");
    if ids.is_empty() && code == 0 {
        if !filtering {
            return Err(Refused("No job identification provided".into()).into());
        }
        let mut sel = Selection::read(&p, &c, "state", "account").await?;
        if sel.states.is_empty() {
            sel.states = active_states();
        }
        for j in all_jobs(&c, sel.query(sel.states.clone())).await? {
            if sel.matches(&j) {
                ids.push((j.id.to_string(), j.id));
            }
        }
    } else if filtering {
        // With ids and filters, Slurm cancels only the ids that match.
        let sel = Selection::read(&p, &c, "state", "account").await?;
        let mut kept = Vec::new();
        for (shown, id) in ids {
            if sel.matches(&c.get_job(id).await?) {
                kept.push((shown, id));
            }
        }
        ids = kept;
    }
    for (shown, id) in ids {
        match c.cancel_job(id).await {
            Ok(_) => {}
            Err(e) if e.status() == Some(404) => {
                eprintln!(
                    "scancel: error: Kill job error on job id {shown}: Invalid job id specified"
                );
                code = 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse() {
        let f = parse_format("%.18i %j|%%").unwrap();
        assert_eq!(
            f[0],
            Piece::Field {
                code: 'i',
                width: Some(18),
                right: true
            }
        );
        assert_eq!(f.last(), Some(&Piece::Text("|%".into())));
        assert!(parse_format("%.1").is_err());
        assert!(parse_long_format("JobID:10,Bogus").is_err());
        assert_eq!(pad("abc", Some(5), true), "  abc");
        assert_eq!(pad_sacct("abcdefghijkl", 10), "abcdefghi+");
    }

    #[test]
    fn times_parse() {
        let now = 1_700_000_000_000;
        assert_eq!(parse_time("now", now).unwrap(), now);
        assert_eq!(parse_time("now-1hour", now).unwrap(), now - 3_600_000);
        assert_eq!(parse_time("2023-11-14", now).unwrap(), 1_699_920_000_000);
        assert_eq!(
            parse_time("2023-11-14T22:13", now).unwrap(),
            1_699_920_000_000 + (22 * 3600 + 13 * 60) * 1000
        );
        assert!(parse_time("yesterday", now).is_err());
    }
}
