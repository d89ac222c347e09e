//! Text templates with `{name}` placeholders, shared by workspace types
//! (start commands, environment, readiness paths) and notification
//! targets (each event's line). `{{` and `}}` are literal braces.

use crate::error::{Result, ValidationError};

/// Renders `template`, asking `value` for each placeholder's text; an
/// error (a sentence) for an unclosed `{` or a stray `}`.
pub fn render(
    template: &str,
    mut value: impl FnMut(&str) -> String,
) -> std::result::Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    loop {
        let Some(i) = rest.find(['{', '}']) else {
            out.push_str(rest);
            return Ok(out);
        };
        out.push_str(&rest[..i]);
        let (brace, after) = (&rest[i..i + 1], &rest[i + 1..]);
        if after.starts_with(brace) {
            out.push_str(brace);
            rest = &after[1..];
            continue;
        }
        if brace == "}" {
            return Err("a `}` has no `{` (write `}}` for a brace)".into());
        }
        let j = after
            .find('}')
            .ok_or_else(|| "a `{` is not closed (write `{{` for a brace)".to_string())?;
        out.push_str(&value(&after[..j]));
        rest = &after[j + 1..];
    }
}

/// Checks that `template` is well formed and names only placeholders
/// `known` accepts; `hint` lists them in the error.
pub fn check(field: &str, template: &str, known: impl Fn(&str) -> bool, hint: &str) -> Result<()> {
    let mut unknown = None;
    render(template, |name| {
        if unknown.is_none() && !known(name) {
            unknown = Some(name.chars().take(40).collect::<String>());
        }
        String::new()
    })
    .map_err(|m| ValidationError::new("invalid-template", field, m))?;
    match unknown {
        Some(name) => Err(ValidationError::new(
            "invalid-template",
            field,
            format!("unknown placeholder `{{{name}}}`: use {hint}"),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_checks() {
        let r = render("a {x} {{y}} b", |n| n.to_uppercase()).unwrap();
        assert_eq!(r, "a X {y} b");
        assert!(render("{x", |_| String::new()).is_err());
        assert!(render("x}", |_| String::new()).is_err());
        assert!(check("f", "{x}", |n| n == "x", "{x}").is_ok());
        let e = check("f", "{z}", |n| n == "x", "{x}").unwrap_err();
        assert_eq!(
            (e.field.as_deref(), e.code.as_str()),
            (Some("f"), "invalid-template")
        );
    }
}
