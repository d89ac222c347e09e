//! Slurm-style option parsing for the drop-in commands: `-x VALUE`,
//! `-xVALUE`, `--long=VALUE`, `--long VALUE`, bundled flags (`-nP`), and
//! every unknown option refused with its name.

use crate::output::UsageError;

/// One option a command takes.
#[derive(Debug, Clone, Copy)]
pub struct Opt {
    /// The short form, if any.
    pub short: Option<char>,
    /// The long form (also the key it is found under).
    pub long: &'static str,
    /// Takes a value.
    pub value: bool,
}

/// A flag.
pub const fn flag(short: Option<char>, long: &'static str) -> Opt {
    Opt {
        short,
        long,
        value: false,
    }
}

/// An option with a value.
pub const fn val(short: Option<char>, long: &'static str) -> Opt {
    Opt {
        short,
        long,
        value: true,
    }
}

/// What was given.
#[derive(Debug, Default)]
pub struct Parsed {
    opts: Vec<(&'static str, Option<String>)>,
    /// Words that are not options.
    pub rest: Vec<String>,
}

impl Parsed {
    /// True if the flag (or option) was given.
    pub fn has(&self, long: &str) -> bool {
        self.opts.iter().any(|(k, _)| *k == long)
    }

    /// The last value given for the option.
    pub fn value(&self, long: &str) -> Option<&str> {
        self.opts
            .iter()
            .rev()
            .find(|(k, _)| *k == long)
            .and_then(|(_, v)| v.as_deref())
    }

    /// Every value given for the option, comma-separated lists split.
    pub fn list(&self, long: &str) -> Vec<String> {
        self.opts
            .iter()
            .filter(|(k, _)| *k == long)
            .filter_map(|(_, v)| v.as_deref())
            .flat_map(|v| v.split(','))
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    }
}

fn refuse(prog: &str, what: &str) -> UsageError {
    UsageError(format!(
        "unrecognized option '{what}': Trestle's {prog} does not support it (docs/slurm.md lists what it does)"
    ))
}

/// Parses `args`; `stop_at_first_word` ends option parsing at the first
/// word that is not an option (srun's command).
pub fn parse(
    prog: &str,
    args: &[String],
    opts: &[Opt],
    stop_at_first_word: bool,
) -> Result<Parsed, UsageError> {
    let mut p = Parsed::default();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if a == "--" {
            p.rest.extend(args[i..].iter().cloned());
            break;
        }
        if let Some(long) = a.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            let Some(o) = opts.iter().find(|o| o.long == name) else {
                return Err(refuse(prog, &format!("--{name}")));
            };
            let v = if o.value {
                match inline {
                    Some(v) => Some(v),
                    None => {
                        let Some(v) = args.get(i) else {
                            return Err(UsageError(format!(
                                "option '--{name}' requires an argument"
                            )));
                        };
                        i += 1;
                        Some(v.clone())
                    }
                }
            } else {
                None
            };
            p.opts.push((o.long, v));
            continue;
        }
        if a.len() > 1 && a.starts_with('-') && !a[1..].starts_with(|c: char| c.is_ascii_digit()) {
            let chars: Vec<char> = a[1..].chars().collect();
            let mut k = 0;
            while k < chars.len() {
                let c = chars[k];
                let Some(o) = opts.iter().find(|o| o.short == Some(c)) else {
                    return Err(refuse(prog, &format!("-{c}")));
                };
                if o.value {
                    let rest: String = chars[k + 1..].iter().collect();
                    let rest = rest.strip_prefix('=').unwrap_or(&rest).to_string();
                    let v = if rest.is_empty() {
                        let Some(v) = args.get(i) else {
                            return Err(UsageError(format!("option '-{c}' requires an argument")));
                        };
                        i += 1;
                        v.clone()
                    } else {
                        rest
                    };
                    p.opts.push((o.long, Some(v)));
                    break;
                }
                p.opts.push((o.long, None));
                k += 1;
            }
            continue;
        }
        p.rest.push(a.clone());
        if stop_at_first_word {
            p.rest.extend(args[i..].iter().cloned());
            break;
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTS: &[Opt] = &[
        flag(Some('h'), "noheader"),
        flag(Some('P'), "parsable2"),
        val(Some('j'), "jobs"),
        val(Some('o'), "format"),
    ];

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn slurm_style_options() {
        let p = parse(
            "sacct",
            &words("-hP -j 12,13 --format=JobID,State x"),
            OPTS,
            false,
        )
        .unwrap();
        assert!(p.has("noheader") && p.has("parsable2"));
        assert_eq!(p.list("jobs"), ["12", "13"]);
        assert_eq!(p.value("format"), Some("JobID,State"));
        assert_eq!(p.rest, ["x"]);
        let p = parse("squeue", &words("-j7 -o %i"), OPTS, false).unwrap();
        assert_eq!(p.value("jobs"), Some("7"));
        assert_eq!(p.value("format"), Some("%i"));
        let e = parse("squeue", &words("--bogus"), OPTS, false).unwrap_err();
        assert!(e.0.contains("'--bogus'"), "{e}");
        assert!(parse("squeue", &words("-z"), OPTS, false).is_err());
        assert!(parse("squeue", &words("-j"), OPTS, false).is_err());
        let p = parse("srun", &words("-j 1 python -h"), OPTS, true).unwrap();
        assert_eq!(p.rest, ["python", "-h"]);
    }
}
