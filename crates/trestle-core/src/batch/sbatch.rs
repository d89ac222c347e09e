//! `trestle sbatch`: the `#SBATCH` directives of an unmodified Slurm batch
//! script and the same options on the command line (which win), turned
//! into a job request. Pure: the caller supplies the script text, the
//! submitting environment and where it was submitted from.

use crate::batch::deps::parse_slurm_dependency;
use crate::batch::spec::{CommandRequest, JobRequest, Quantity};
use crate::batch::workflow::SlurmSpec;
use crate::error::{Result, ValidationError};
use crate::parse::{parse_duration, parse_memory_mib, validate_env_name};
use std::collections::BTreeMap;

/// Options as given by directives or flags; values are checked when the
/// request is built, with errors naming the option.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SbatchOptions {
    /// `-J/--job-name`.
    pub job_name: Option<String>,
    /// `-a/--array`.
    pub array: Option<String>,
    /// `-c/--cpus-per-task`.
    pub cpus_per_task: Option<String>,
    /// `--mem`.
    pub mem: Option<String>,
    /// `--mem-per-cpu`.
    pub mem_per_cpu: Option<String>,
    /// `-t/--time`.
    pub time: Option<String>,
    /// `-o/--output`.
    pub output: Option<String>,
    /// `-e/--error`.
    pub error: Option<String>,
    /// `-d/--dependency`.
    pub dependency: Option<String>,
    /// `--gres`.
    pub gres: Option<String>,
    /// `-G/--gpus`.
    pub gpus: Option<String>,
    /// `-D/--chdir`.
    pub chdir: Option<String>,
    /// `--export`.
    pub export: Option<String>,
    /// `-p/--partition`.
    pub partition: Option<String>,
    /// `-n/--ntasks`.
    pub ntasks: Option<String>,
    /// `-N/--nodes`.
    pub nodes: Option<String>,
    /// `--parsable`: print only the job id.
    pub parsable: bool,
    /// `-W/--wait`: wait for the job to end.
    pub wait: bool,
    /// `--mail-type`: which of the job's events its owner is told of
    /// (see [`crate::notify::rule::slurm_mail_events`]).
    pub mail_type: Option<String>,
    /// `--mail-user` (notifications go to the owner's address instead).
    pub mail_user: Option<String>,
    /// Studies to attach, from `#TRESTLE --study NAME[/SUBDIR][:ro|:rw][=PATH]`
    /// comment lines (Trestle's own directive; Slurm ignores it).
    pub studies: Vec<String>,
    /// `--wrap`: a command to run as the whole script (command line only).
    pub wrap: Option<String>,
    /// `-A/--account`: the project to charge.
    pub account: Option<String>,
    /// `--comment`: kept as the job's `comment` tag.
    pub comment: Option<String>,
    /// Options that were not understood or are ignored here.
    pub warnings: Vec<String>,
}

/// Which field an option sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    JobName,
    Array,
    Cpus,
    Mem,
    MemPerCpu,
    Time,
    Output,
    Error,
    Dependency,
    Gres,
    Gpus,
    Chdir,
    Export,
    Partition,
    Ntasks,
    Nodes,
    Parsable,
    Wait,
    MailType,
    MailUser,
    Wrap,
    Account,
    Comment,
    /// Understood, but has no meaning here (mail, accounting, ...).
    Ignored,
    /// The same, for an option without a value (`--requeue`).
    IgnoredFlag,
}

/// (short, long, key).
const OPTIONS: &[(Option<char>, &str, Key)] = &[
    (Some('J'), "job-name", Key::JobName),
    (Some('a'), "array", Key::Array),
    (Some('c'), "cpus-per-task", Key::Cpus),
    (None, "mem", Key::Mem),
    (None, "mem-per-cpu", Key::MemPerCpu),
    (Some('t'), "time", Key::Time),
    (Some('o'), "output", Key::Output),
    (Some('e'), "error", Key::Error),
    (Some('d'), "dependency", Key::Dependency),
    (None, "gres", Key::Gres),
    (Some('G'), "gpus", Key::Gpus),
    (Some('D'), "chdir", Key::Chdir),
    (None, "export", Key::Export),
    (Some('p'), "partition", Key::Partition),
    (Some('n'), "ntasks", Key::Ntasks),
    (Some('N'), "nodes", Key::Nodes),
    (None, "parsable", Key::Parsable),
    (Some('W'), "wait", Key::Wait),
    (Some('A'), "account", Key::Account),
    (Some('q'), "qos", Key::Ignored),
    (None, "mail-type", Key::MailType),
    (None, "mail-user", Key::MailUser),
    (None, "wrap", Key::Wrap),
    (Some('C'), "constraint", Key::Ignored),
    (None, "comment", Key::Comment),
    (None, "wckey", Key::Ignored),
    (None, "requeue", Key::IgnoredFlag),
    (None, "no-requeue", Key::IgnoredFlag),
    (None, "nice", Key::Ignored),
    (None, "open-mode", Key::Ignored),
    (None, "signal", Key::Ignored),
    (None, "ntasks-per-node", Key::Ignored),
];

fn is_flag(k: Key) -> bool {
    matches!(k, Key::Parsable | Key::Wait | Key::IgnoredFlag)
}

impl SbatchOptions {
    fn set(&mut self, key: Key, name: &str, value: Option<String>) {
        let slot = match key {
            Key::JobName => &mut self.job_name,
            Key::Array => &mut self.array,
            Key::Cpus => &mut self.cpus_per_task,
            Key::Mem => &mut self.mem,
            Key::MemPerCpu => &mut self.mem_per_cpu,
            Key::Time => &mut self.time,
            Key::Output => &mut self.output,
            Key::Error => &mut self.error,
            Key::Dependency => &mut self.dependency,
            Key::Gres => &mut self.gres,
            Key::Gpus => &mut self.gpus,
            Key::Chdir => &mut self.chdir,
            Key::Export => &mut self.export,
            Key::Partition => &mut self.partition,
            Key::Ntasks => &mut self.ntasks,
            Key::Nodes => &mut self.nodes,
            Key::MailType => &mut self.mail_type,
            Key::MailUser => &mut self.mail_user,
            Key::Wrap => &mut self.wrap,
            Key::Account => &mut self.account,
            Key::Comment => &mut self.comment,
            Key::Parsable => {
                self.parsable = true;
                return;
            }
            Key::Wait => {
                self.wait = true;
                return;
            }
            Key::Ignored | Key::IgnoredFlag => {
                self.warnings
                    .push(format!("option `{name}` has no effect here; ignored"));
                return;
            }
        };
        *slot = value;
    }

    /// Parses options from words (command-line arguments or one directive
    /// line). Stops at the first word that is not an option or an option's
    /// value and returns its position (the script, on a command line).
    pub fn parse_words(&mut self, words: &[String]) -> Result<usize> {
        let mut i = 0;
        while i < words.len() {
            let w = &words[i];
            if w == "--" {
                return Ok(i + 1);
            }
            if !w.starts_with('-') || w == "-" {
                return Ok(i);
            }
            let (found, name, inline) = if let Some(long) = w.strip_prefix("--") {
                let (n, v) = match long.split_once('=') {
                    Some((n, v)) => (n, Some(v.to_string())),
                    None => (long, None),
                };
                (
                    OPTIONS.iter().find(|(_, l, _)| *l == n).map(|o| o.2),
                    format!("--{n}"),
                    v,
                )
            } else {
                let mut cs = w[1..].chars();
                let c = cs.next().unwrap_or('-');
                let rest: String = cs.collect();
                let rest = rest.strip_prefix('=').map(str::to_string).unwrap_or(rest);
                (
                    OPTIONS.iter().find(|(s, _, _)| *s == Some(c)).map(|o| o.2),
                    format!("-{c}"),
                    (!rest.is_empty()).then_some(rest),
                )
            };
            i += 1;
            let Some(key) = found else {
                return Err(ValidationError::new(
                    "unsupported-option",
                    &name,
                    format!(
                        "sbatch option `{name}` is not supported by Trestle (docs/slurm.md lists the options it takes)"
                    ),
                ));
            };
            if is_flag(key) {
                self.set(key, &name, None);
                continue;
            }
            let value = match inline {
                Some(v) => v,
                None => {
                    let Some(v) = words.get(i) else {
                        return Err(ValidationError::new(
                            "invalid-option",
                            &name,
                            format!("option `{name}` needs a value"),
                        ));
                    };
                    i += 1;
                    v.clone()
                }
            };
            self.set(key, &name, Some(value));
        }
        Ok(i)
    }

    /// Reads the `#SBATCH` lines at the top of a script (up to the first
    /// command, as Slurm does).
    pub fn from_script(text: &str) -> Result<SbatchOptions> {
        let mut o = SbatchOptions::default();
        for (n, line) in text.lines().enumerate() {
            let t = line.trim();
            if t.is_empty() || (n == 0 && t.starts_with("#!")) {
                continue;
            }
            if !t.starts_with('#') {
                break;
            }
            if let Some(rest) = t.strip_prefix("#TRESTLE")
                && rest.starts_with(char::is_whitespace)
            {
                let words = split_words(strip_comment(rest)).map_err(|why| {
                    ValidationError::new(
                        "invalid-directive",
                        "script",
                        format!("line {}: {why}: `{t}`", n + 1),
                    )
                })?;
                match words.as_slice() {
                    [flag, v] if flag == "--study" => o.studies.push(v.clone()),
                    [one] if one.starts_with("--study=") => {
                        o.studies.push(one["--study=".len()..].to_string());
                    }
                    _ => o.warnings.push(format!(
                        "line {}: `#TRESTLE` knows only `--study NAME[:ro|:rw][=PATH]`; ignored",
                        n + 1
                    )),
                }
                continue;
            }
            let Some(rest) = t.strip_prefix("#SBATCH") else {
                continue;
            };
            if !rest.is_empty() && !rest.starts_with(char::is_whitespace) {
                continue;
            }
            let words = split_words(strip_comment(rest)).map_err(|why| {
                ValidationError::new(
                    "invalid-directive",
                    "script",
                    format!("line {}: {why}: `{t}`", n + 1),
                )
            })?;
            let used = o.parse_words(&words)?;
            if used < words.len() {
                o.warnings.push(format!(
                    "line {}: `{}` is not an option; ignored",
                    n + 1,
                    words[used..].join(" ")
                ));
            }
        }
        Ok(o)
    }

    /// These options over `base` (the command line wins over directives).
    pub fn over(self, base: SbatchOptions) -> SbatchOptions {
        let mut warnings = base.warnings;
        warnings.extend(self.warnings);
        SbatchOptions {
            job_name: self.job_name.or(base.job_name),
            array: self.array.or(base.array),
            cpus_per_task: self.cpus_per_task.or(base.cpus_per_task),
            mem: self.mem.or(base.mem),
            mem_per_cpu: self.mem_per_cpu.or(base.mem_per_cpu),
            time: self.time.or(base.time),
            output: self.output.or(base.output),
            error: self.error.or(base.error),
            dependency: self.dependency.or(base.dependency),
            gres: self.gres.or(base.gres),
            gpus: self.gpus.or(base.gpus),
            chdir: self.chdir.or(base.chdir),
            export: self.export.or(base.export),
            partition: self.partition.or(base.partition),
            ntasks: self.ntasks.or(base.ntasks),
            nodes: self.nodes.or(base.nodes),
            parsable: self.parsable || base.parsable,
            wait: self.wait || base.wait,
            mail_type: self.mail_type.or(base.mail_type),
            mail_user: self.mail_user.or(base.mail_user),
            studies: if self.studies.is_empty() {
                base.studies
            } else {
                self.studies
            },
            wrap: self.wrap.or(base.wrap),
            account: self.account.or(base.account),
            comment: self.comment.or(base.comment),
            warnings,
        }
    }

    /// The script `--wrap CMD` stands for: a shell script running CMD, as
    /// Slurm writes it.
    pub fn wrap_script(cmd: &str) -> String {
        format!("#!/bin/sh\n# This script was written by sbatch --wrap.\n{cmd}\n")
    }
}

#[cfg(test)]
mod study_directive_tests {
    use super::*;

    #[test]
    fn trestle_study_directives() {
        let o = SbatchOptions::from_script(
            "#!/bin/sh\n#SBATCH -J x\n#TRESTLE --study genomes:ro=data\n#TRESTLE --study=notes:rw\n#TRESTLE --colour red\necho hi\n#TRESTLE --study late\n",
        )
        .unwrap();
        assert_eq!(o.studies, ["genomes:ro=data", "notes:rw"]);
        assert_eq!(o.warnings.len(), 1, "{:?}", o.warnings);
        let bad = SbatchOptions::from_script("#TRESTLE --study Bad\n").unwrap();
        let ctx = SubmitContext::default();
        let e = bad.to_request(&ctx).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("#TRESTLE --study.study"), "{e:?}");
        let ok = SbatchOptions::from_script("#TRESTLE --study genomes:rw\n").unwrap();
        let req = ok.to_request(&ctx).unwrap();
        assert_eq!(req.studies.len(), 1);
        assert_eq!(req.studies[0].mode, crate::study::attach::AttachMode::Rw);
    }
}

/// Drops a trailing ` # comment`.
fn strip_comment(s: &str) -> &str {
    match s.find(" #").or_else(|| s.find("\t#")) {
        Some(i) => &s[..i],
        None => s,
    }
}

/// Splits like a shell: whitespace separates, quotes group, `\` escapes.
pub fn split_words(s: &str) -> std::result::Result<Vec<String>, &'static str> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut have = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                have = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(ch) => cur.push(ch),
                        None => return Err("unterminated quote"),
                    }
                }
            }
            '"' => {
                have = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(ch) => cur.push(ch),
                            None => return Err("unterminated quote"),
                        },
                        Some(ch) => cur.push(ch),
                        None => return Err("unterminated quote"),
                    }
                }
            }
            '\\' => {
                have = true;
                if let Some(ch) = chars.next() {
                    cur.push(ch);
                }
            }
            c if c.is_whitespace() => {
                if have {
                    words.push(std::mem::take(&mut cur));
                    have = false;
                }
            }
            c => {
                have = true;
                cur.push(c);
            }
        }
    }
    if have {
        words.push(cur);
    }
    Ok(words)
}

/// Where and by whom a script is submitted.
#[derive(Debug, Clone, Default)]
pub struct SubmitContext {
    /// The script's file name (it is uploaded under this name).
    pub script_name: String,
    /// Arguments for the script.
    pub args: Vec<String>,
    /// The directory `sbatch` runs in (absolute).
    pub submit_dir: String,
    /// This host's name.
    pub submit_host: String,
    /// The submitting user.
    pub user: String,
    /// The submitting environment (for `--export`).
    pub env: BTreeMap<String, String>,
}

/// Quotes a word for a POSIX shell.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn positive(field: &str, text: &str) -> Result<u32> {
    text.trim()
        .parse::<u32>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| {
            ValidationError::new(
                "invalid-option",
                field,
                format!("`{text}` is not a positive whole number"),
            )
        })
}

/// GPUs from `--gres=gpu:N`, `gpu:TYPE:N` or `gpu` (one).
fn gres_gpus(text: &str) -> Result<u32> {
    let mut gpus = 0;
    for item in text.split(',') {
        let parts: Vec<&str> = item.trim().split(':').collect();
        match parts.as_slice() {
            ["gpu"] => gpus += 1,
            ["gpu", n] | ["gpu", _, n] => match n.parse::<u32>() {
                Ok(n) => gpus += n,
                Err(_) if parts.len() == 2 => gpus += 1, // gpu:TYPE
                Err(_) => {
                    return Err(ValidationError::new(
                        "invalid-option",
                        "--gres",
                        format!("`{item}` is not gpu:N or gpu:TYPE:N"),
                    ));
                }
            },
            _ => {
                return Err(ValidationError::new(
                    "invalid-option",
                    "--gres",
                    format!("only GPUs can be requested as generic resources, got `{item}`"),
                ));
            }
        }
    }
    Ok(gpus)
}

/// Whether a submitting variable is kept by `--export=ALL`: secrets and
/// Trestle's own credentials never travel with a job.
fn exportable(name: &str) -> bool {
    let up = name.to_ascii_uppercase();
    let secret = [
        "TOKEN",
        "SECRET",
        "PASSWORD",
        "PASSWD",
        "CREDENTIAL",
        "_KEY",
    ]
    .iter()
    .any(|s| up.contains(s));
    // The drop-in's call log follows the job, so that its `srun` calls
    // are logged with the rest.
    if up == "TRESTLE_SHIM_LOG" {
        return true;
    }
    !secret
        && !up.starts_with("TRESTLE_")
        && !up.starts_with("SLURM_")
        && !matches!(up.as_str(), "PWD" | "OLDPWD" | "SHLVL" | "_")
        && validate_env_name("env", name).is_ok()
}

/// The environment a job gets from `--export` (Slurm's `ALL`, `NONE`,
/// `VAR` and `VAR=value`, comma-separated; default `ALL`) out of the
/// submitter's `env`: `ALL` leaves out variables that look like secrets
/// and Trestle's and Slurm's own.
pub fn export_env(
    text: Option<&str>,
    env: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let text = text.unwrap_or("ALL");
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match item {
            "ALL" => out.extend(
                env.iter()
                    .filter(|(k, _)| exportable(k))
                    .map(|(k, v)| (k.clone(), v.clone())),
            ),
            "NONE" | "NIL" => {}
            _ => match item.split_once('=') {
                Some((k, v)) => {
                    validate_env_name("--export", k)?;
                    out.insert(k.to_string(), v.to_string());
                }
                None => {
                    validate_env_name("--export", item)?;
                    if let Some(v) = env.get(item) {
                        out.insert(item.to_string(), v.clone());
                    }
                }
            },
        }
    }
    Ok(out)
}

impl SbatchOptions {
    /// Builds the job request. `inputs` is left for the caller (the upload
    /// holding the script).
    pub fn to_request(&self, ctx: &SubmitContext) -> Result<JobRequest> {
        if let Some(n) = &self.nodes {
            let (lo, hi) = n.split_once('-').unwrap_or((n, n));
            let lo = positive("--nodes", lo)?;
            let hi = positive("--nodes", hi)?;
            if lo > 1 || hi < lo {
                return Err(ValidationError::new(
                    "unsupported-multi-node",
                    "--nodes",
                    format!(
                        "`--nodes={n}`: jobs spanning more than one node are not supported yet; use --nodes=1"
                    ),
                ));
            }
        }
        let ntasks = match &self.ntasks {
            Some(t) => positive("--ntasks", t)?,
            None => 1,
        };
        let cpus_per_task = match &self.cpus_per_task {
            Some(c) => positive("--cpus-per-task", c)?,
            None => 1,
        };
        let cpus = ntasks.checked_mul(cpus_per_task).ok_or_else(|| {
            ValidationError::new("invalid-option", "--ntasks", "too many CPUs requested")
        })?;
        let memory = match (&self.mem, &self.mem_per_cpu) {
            (Some(m), _) => Some(parse_memory_mib("--mem", m)?),
            (None, Some(m)) => Some(parse_memory_mib("--mem-per-cpu", m)? * u64::from(cpus)),
            (None, None) => None,
        };
        let timeout = match &self.time {
            Some(t) => Some(parse_duration("--time", t, true)?),
            None => None,
        };
        let gpus = match (&self.gres, &self.gpus) {
            (_, Some(g)) => Some(
                g.rsplit(':')
                    .next()
                    .and_then(|n| n.parse::<u32>().ok())
                    .ok_or_else(|| {
                        ValidationError::new(
                            "invalid-option",
                            "--gpus",
                            format!("`{g}` is not a GPU count"),
                        )
                    })?,
            ),
            (Some(g), None) => Some(gres_gpus(g)?),
            (None, None) => None,
        };
        let after = match &self.dependency {
            Some(d) => parse_slurm_dependency("--dependency", d)?,
            None => Vec::new(),
        };
        let queue = self
            .partition
            .as_ref()
            .map(|p| p.split(',').next().unwrap_or(p).trim().to_string());
        let mut args = String::new();
        for a in &ctx.args {
            args.push(' ');
            args.push_str(&sh_quote(a));
        }
        // The script is staged into the scratch directory; it runs there,
        // or in `--chdir` (made absolute against the submit directory).
        let script = format!("\"$TRESTLE_SCRATCH\"/{}", sh_quote(&ctx.script_name));
        let command = format!("chmod +x {script} && exec {script}{args}");
        let chdir = self.chdir.as_ref().map(|d| {
            if d.starts_with('/') || ctx.submit_dir.is_empty() {
                d.clone()
            } else {
                format!("{}/{d}", ctx.submit_dir.trim_end_matches('/'))
            }
        });
        let name = self
            .job_name
            .clone()
            .unwrap_or_else(|| ctx.script_name.clone());
        Ok(JobRequest {
            name: Some(name),
            queue,
            command: Some(CommandRequest::Script(command)),
            env: export_env(self.export.as_deref(), &ctx.env)?,
            cpus: Some(cpus),
            memory: memory.map(Quantity::Number),
            gpus,
            timeout: timeout.map(Quantity::Number),
            array: self.array.clone(),
            after,
            slurm: Some(SlurmSpec {
                output: self.output.clone(),
                error: self.error.clone(),
                submit_dir: Some(ctx.submit_dir.clone()).filter(|s| !s.is_empty()),
                submit_host: Some(ctx.submit_host.clone()).filter(|s| !s.is_empty()),
                user: Some(ctx.user.clone()).filter(|s| !s.is_empty()),
                chdir,
                ntasks,
                cpus_per_task,
                script: None,
            }),
            project: self.account.clone(),
            tags: self
                .comment
                .iter()
                .map(|c| ("comment".to_string(), c.clone()))
                .collect(),
            studies: self
                .studies
                .iter()
                .map(|v| crate::study::attach::parse("#TRESTLE --study", v))
                .collect::<Result<Vec<_>>>()?,
            ..JobRequest::default()
        })
    }
}

#[cfg(test)]
#[path = "sbatch_tests.rs"]
mod tests;
