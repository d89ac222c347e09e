//! Typed parameters of a workspace type, their values in configurations
//! and launches, and the rendering of templates (`{socket}`, `{prefix}`,
//! `{secret}`, `{home}`, `{param.NAME}`).

use crate::error::{Result, ValidationError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A parameter's type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "type")]
pub enum ParamKind {
    /// Any text (no control characters), at most 1,024 characters.
    String,
    /// A whole number, optionally bounded.
    Int {
        /// Smallest allowed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min: Option<i64>,
        /// Largest allowed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max: Option<i64>,
    },
    /// `true` or `false`.
    Bool,
    /// One of a fixed list.
    Choice {
        /// The allowed values.
        choices: Vec<String>,
    },
}

/// One parameter a type declares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamSpec {
    /// Its name (`[a-z0-9_]`).
    pub name: String,
    /// What it holds.
    #[serde(flatten)]
    pub kind: ParamKind,
    /// The value when none is given.
    pub default: String,
    /// What it is for.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// The longest value of a string parameter.
pub const MAX_VALUE: usize = 4096;

impl ParamSpec {
    /// Checks the declaration itself (its name, and that its default is a
    /// value of its type).
    pub fn check(&self, field: &str) -> Result<()> {
        let ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !ok {
            return Err(ValidationError::new(
                "invalid-param",
                &format!("{field}.name"),
                format!(
                    "`{}` is not a parameter name: use a-z, 0-9 and `_`",
                    self.name
                ),
            ));
        }
        if let ParamKind::Choice { choices } = &self.kind
            && choices.is_empty()
        {
            return Err(ValidationError::new(
                "invalid-param",
                &format!("{field}.choices"),
                "a choice parameter needs at least one choice",
            ));
        }
        self.value(&format!("{field}.default"), &self.default)
            .map(|_| ())
    }

    /// Checks `text` as a value of this parameter and returns it
    /// normalised (`true`/`false`, the integer as written by Rust).
    pub fn value(&self, field: &str, text: &str) -> Result<String> {
        let bad = |msg: String| ValidationError::new("invalid-param", field, msg);
        // Text may span lines (a script); nothing else invisible.
        let multiline = matches!(self.kind, ParamKind::String);
        if text
            .chars()
            .any(|c| c.is_control() && !(multiline && (c == '\n' || c == '\t')))
        {
            return Err(bad(format!(
                "`{}` cannot contain control characters",
                self.name
            )));
        }
        match &self.kind {
            ParamKind::String => {
                if text.chars().count() > MAX_VALUE {
                    return Err(bad(format!(
                        "`{}` is at most {MAX_VALUE} characters",
                        self.name
                    )));
                }
                Ok(text.to_string())
            }
            ParamKind::Int { min, max } => {
                let n: i64 = text.trim().parse().map_err(|_| {
                    bad(format!(
                        "`{}` must be a whole number, got `{text}`",
                        self.name
                    ))
                })?;
                if min.is_some_and(|m| n < m) || max.is_some_and(|m| n > m) {
                    return Err(bad(format!(
                        "`{}` must be between {} and {}, got {n}",
                        self.name,
                        min.map_or("-inf".into(), |m| m.to_string()),
                        max.map_or("inf".into(), |m| m.to_string()),
                    )));
                }
                Ok(n.to_string())
            }
            ParamKind::Bool => match text.trim() {
                "true" | "yes" | "1" | "on" => Ok("true".into()),
                "false" | "no" | "0" | "off" => Ok("false".into()),
                _ => Err(bad(format!(
                    "`{}` must be true or false, got `{text}`",
                    self.name
                ))),
            },
            ParamKind::Choice { choices } => {
                if choices.iter().any(|c| c == text) {
                    Ok(text.to_string())
                } else {
                    Err(bad(format!(
                        "`{}` must be one of {}, got `{text}`",
                        self.name,
                        choices.join(", ")
                    )))
                }
            }
        }
    }
}

/// Resolves the parameter values of a launch: the type's defaults, then
/// the configuration's values, then the user's (`field` names where the
/// user's values came from). Unknown names are refused.
pub fn resolve(
    specs: &[ParamSpec],
    config: &BTreeMap<String, String>,
    user: &BTreeMap<String, String>,
    field: &str,
) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for s in specs {
        out.insert(s.name.clone(), s.default.clone());
    }
    for (layer, values) in [("params", config), (field, user)] {
        for (k, v) in values {
            let f = format!("{layer}.{k}");
            let spec = specs.iter().find(|s| &s.name == k).ok_or_else(|| {
                let known: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
                ValidationError::new(
                    "unknown-param",
                    &f,
                    if known.is_empty() {
                        format!("this workspace type has no parameter `{k}` (it has none)")
                    } else {
                        format!(
                            "this workspace type has no parameter `{k}`; it has {}",
                            known.join(", ")
                        )
                    },
                )
            })?;
            out.insert(k.clone(), spec.value(&f, v)?);
        }
    }
    Ok(out)
}

/// What a template may refer to.
#[derive(Debug, Clone, Default)]
pub struct Bindings<'a> {
    /// The app's Unix socket path.
    pub socket: &'a str,
    /// The URL prefix the app is served under (`/ws/7/`).
    pub prefix: &'a str,
    /// The per-launch secret.
    pub secret: &'a str,
    /// The workspace's home directory.
    pub home: &'a str,
    /// A TCP port (for apps that cannot listen on a socket).
    pub port: u16,
    /// Parameter values.
    pub params: Option<&'a BTreeMap<String, String>>,
}

/// The placeholders a template may use besides `{param.NAME}`.
pub const PLACEHOLDERS: &[&str] = &["socket", "prefix", "secret", "home", "port"];

/// Checks that `template` uses only known placeholders (and declared
/// parameters); `{{` and `}}` are literal braces.
pub fn check_template(field: &str, template: &str, params: &[ParamSpec]) -> Result<()> {
    let known = |name: &str| {
        PLACEHOLDERS.contains(&name)
            || name
                .strip_prefix("param.")
                .is_some_and(|p| params.iter().any(|s| s.name == p))
    };
    let hint = format!(
        "{}, or {{param.NAME}} of a declared parameter",
        PLACEHOLDERS
            .iter()
            .map(|p| format!("{{{p}}}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    crate::template::check(field, template, known, &hint)
}

/// Renders `template` with `b`. Unknown placeholders render empty (they
/// were refused when the type was imported).
pub fn render(template: &str, b: &Bindings<'_>) -> String {
    crate::template::render(template, |name| match name {
        "socket" => b.socket.to_string(),
        "prefix" => b.prefix.to_string(),
        "secret" => b.secret.to_string(),
        "home" => b.home.to_string(),
        "port" => b.port.to_string(),
        other => other
            .strip_prefix("param.")
            .and_then(|p| b.params.and_then(|m| m.get(p)).cloned())
            .unwrap_or_default(),
    })
    .unwrap_or_else(|_| template.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(name: &str) -> ParamSpec {
        ParamSpec {
            name: name.into(),
            kind: ParamKind::Int {
                min: Some(1),
                max: Some(8),
            },
            default: "2".into(),
            description: String::new(),
        }
    }

    #[test]
    fn values_are_typed() {
        let p = int("n");
        assert_eq!(p.value("f", " 3").unwrap(), "3");
        assert_eq!(p.value("f", "x").unwrap_err().field.as_deref(), Some("f"));
        assert!(p.value("f", "9").is_err());
        let b = ParamSpec {
            kind: ParamKind::Bool,
            default: "yes".into(),
            ..int("b")
        };
        assert_eq!(b.value("f", "on").unwrap(), "true");
        assert!(b.value("f", "maybe").is_err());
        assert!(b.check("params[0]").is_ok());
    }

    #[test]
    fn resolve_layers_and_refuses_unknown() {
        let specs = vec![int("n")];
        let mut c = BTreeMap::new();
        c.insert("n".to_string(), "4".to_string());
        let mut u = BTreeMap::new();
        assert_eq!(resolve(&specs, &c, &u, "param").unwrap()["n"], "4");
        u.insert("n".to_string(), "5".to_string());
        assert_eq!(resolve(&specs, &c, &u, "param").unwrap()["n"], "5");
        u.insert("m".to_string(), "1".to_string());
        let e = resolve(&specs, &c, &u, "param").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("param.m"));
        u.remove("m");
        u.insert("n".to_string(), "many".to_string());
        let e = resolve(&specs, &c, &u, "param").unwrap_err();
        assert_eq!(
            (e.code.as_str(), e.field.as_deref()),
            ("invalid-param", Some("param.n"))
        );
    }

    #[test]
    fn templates() {
        let specs = vec![int("n")];
        assert!(check_template("c", "--sock={socket} --n={param.n} {{x}}", &specs).is_ok());
        assert!(check_template("c", "{nope}", &specs).is_err());
        assert!(check_template("c", "{param.m}", &specs).is_err());
        assert!(check_template("c", "{socket", &specs).is_err());
        let mut params = BTreeMap::new();
        params.insert("n".to_string(), "3".to_string());
        let b = Bindings {
            socket: "/s",
            prefix: "/ws/1/",
            secret: "k",
            home: "/h",
            port: 0,
            params: Some(&params),
        };
        assert_eq!(
            render("{socket}|{prefix}|{secret}|{home}|{param.n}|{{}}", &b),
            "/s|/ws/1/|k|/h|3|{}"
        );
    }
}
