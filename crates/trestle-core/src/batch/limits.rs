//! How large each part of a job request may be. Every field a user sends is
//! bounded, so that one request cannot make every later listing, lease or
//! log read large. A request over a limit is refused with the field named.
//!
//! The numbers follow what real work needs: Slurm's default largest batch
//! script is 4 MiB, Linux passes at most 2 MiB of arguments and environment
//! to a process; a job here gets 1 MiB of command and 256 KiB of
//! environment.

use crate::error::{Result, ValidationError};
use std::collections::BTreeMap;

/// Largest command: the script's bytes, or the sum of the arguments' bytes.
pub const MAX_COMMAND_BYTES: usize = 1024 * 1024;
/// Most arguments in an argv command.
pub const MAX_ARGS: usize = 10_000;
/// Most environment variables.
pub const MAX_ENV_VARS: usize = 1_000;
/// Largest environment: the sum of every name's and value's bytes.
pub const MAX_ENV_BYTES: usize = 256 * 1024;
/// Longest environment variable name.
pub const MAX_ENV_NAME_BYTES: usize = 256;
/// Most tags.
pub const MAX_TAGS: usize = 64;
/// Largest set of tags: the sum of every key's and value's bytes.
pub const MAX_TAG_BYTES: usize = 16 * 1024;
/// Longest success string.
pub const MAX_SUCCESS_STRING_BYTES: usize = 4096;
/// Most exit codes that retry.
pub const MAX_RETRY_EXIT_CODES: usize = 256;

/// Lowest priority a job may have.
pub const MIN_PRIORITY: i32 = -10_000;
/// Highest priority a job may have.
pub const MAX_PRIORITY: i32 = 10_000;
/// Highest priority a user without the admin role may give a job, unless
/// the queue allows more (`max_user_priority`): users order their own work
/// by lowering some of it, as with Slurm's `--nice`, and cannot jump ahead
/// of other people's jobs.
pub const DEFAULT_MAX_USER_PRIORITY: i32 = 0;

/// How much of a command a listing shows.
pub const LISTED_COMMAND_BYTES: usize = 512;

fn too_large(code: &str, field: &str, what: &str, got: usize, max: usize) -> ValidationError {
    ValidationError::new(
        code,
        field,
        format!("{what} is {got} bytes; at most {max} are accepted"),
    )
}

/// Checks the size of a command given as arguments.
pub fn check_argv(field: &str, argv: &[String]) -> Result<()> {
    if argv.len() > MAX_ARGS {
        return Err(ValidationError::new(
            "command-too-large",
            field,
            format!(
                "the command has {} arguments; at most {MAX_ARGS} are accepted",
                argv.len()
            ),
        ));
    }
    let bytes: usize = argv.iter().map(String::len).sum();
    if bytes > MAX_COMMAND_BYTES {
        return Err(too_large(
            "command-too-large",
            field,
            "the command",
            bytes,
            MAX_COMMAND_BYTES,
        ));
    }
    Ok(())
}

/// Checks the size of a shell script command.
pub fn check_script(field: &str, script: &str) -> Result<()> {
    if script.len() > MAX_COMMAND_BYTES {
        return Err(too_large(
            "command-too-large",
            field,
            "the script",
            script.len(),
            MAX_COMMAND_BYTES,
        ));
    }
    Ok(())
}

/// Checks the number and size of environment variables.
pub fn check_env(field: &str, env: &BTreeMap<String, String>) -> Result<()> {
    if env.len() > MAX_ENV_VARS {
        return Err(ValidationError::new(
            "env-too-large",
            field,
            format!(
                "{} environment variables; at most {MAX_ENV_VARS} are accepted",
                env.len()
            ),
        ));
    }
    if let Some(k) = env.keys().find(|k| k.len() > MAX_ENV_NAME_BYTES) {
        return Err(ValidationError::new(
            "invalid-env",
            field,
            format!(
                "the variable name `{}…` is longer than {MAX_ENV_NAME_BYTES} bytes",
                k.chars().take(32).collect::<String>()
            ),
        ));
    }
    let bytes: usize = env.iter().map(|(k, v)| k.len() + v.len()).sum();
    if bytes > MAX_ENV_BYTES {
        return Err(too_large(
            "env-too-large",
            field,
            "the environment",
            bytes,
            MAX_ENV_BYTES,
        ));
    }
    Ok(())
}

/// Checks the number and total size of tags (each key and value is checked
/// on its own by the request's validation).
pub fn check_tags(field: &str, tags: &BTreeMap<String, String>) -> Result<()> {
    if tags.len() > MAX_TAGS {
        return Err(ValidationError::new(
            "tags-too-large",
            field,
            format!("{} tags; at most {MAX_TAGS} are accepted", tags.len()),
        ));
    }
    let bytes: usize = tags.iter().map(|(k, v)| k.len() + v.len()).sum();
    if bytes > MAX_TAG_BYTES {
        return Err(too_large(
            "tags-too-large",
            field,
            "the tags",
            bytes,
            MAX_TAG_BYTES,
        ));
    }
    Ok(())
}

/// Checks the success string and the exit codes that retry.
pub fn check_outcome_rules(success: Option<&str>, retry_exit_codes: &[i32]) -> Result<()> {
    if let Some(s) = success
        && s.len() > MAX_SUCCESS_STRING_BYTES
    {
        return Err(too_large(
            "invalid-success-string",
            "success_string",
            "the success string",
            s.len(),
            MAX_SUCCESS_STRING_BYTES,
        ));
    }
    if retry_exit_codes.len() > MAX_RETRY_EXIT_CODES {
        return Err(ValidationError::new(
            "invalid-retry-exit-codes",
            "retry_exit_codes",
            format!(
                "{} exit codes; at most {MAX_RETRY_EXIT_CODES} are accepted",
                retry_exit_codes.len()
            ),
        ));
    }
    Ok(())
}

/// Checks that a priority is within [`MIN_PRIORITY`]..=[`MAX_PRIORITY`].
pub fn check_priority_range(priority: i32) -> Result<()> {
    if (MIN_PRIORITY..=MAX_PRIORITY).contains(&priority) {
        return Ok(());
    }
    Err(ValidationError::new(
        "invalid-priority",
        "priority",
        format!("priority must be between {MIN_PRIORITY} and {MAX_PRIORITY}, got {priority}"),
    ))
}

/// Decides whether a submitter may give a job `priority` in `queue`, whose
/// users may go up to `max_user` (see [`DEFAULT_MAX_USER_PRIORITY`]);
/// `privileged` submitters (admins) may use the whole range.
pub fn check_user_priority(
    priority: i32,
    queue: &str,
    max_user: i32,
    privileged: bool,
) -> Result<()> {
    if privileged || priority <= max_user {
        return Ok(());
    }
    Err(ValidationError::new(
        "priority-not-allowed",
        "priority",
        format!(
            "priority {priority} is above {max_user}, the highest users may set in queue `{queue}`; \
             lower the priority of your other jobs to order them (down to {MIN_PRIORITY}), \
             or ask an admin"
        ),
    ))
}

/// The longest prefix of `s` of at most `max` bytes that ends on a
/// character boundary.
pub fn prefix(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_name_their_field() {
        let big = "x".repeat(MAX_COMMAND_BYTES + 1);
        assert_eq!(
            check_script("command", &big).unwrap_err().field.as_deref(),
            Some("command")
        );
        assert!(check_script("command", &big[1..]).is_ok());
        let argv = vec!["a".to_string(); MAX_ARGS + 1];
        assert_eq!(
            check_argv("command", &argv).unwrap_err().code,
            "command-too-large"
        );
        let env: BTreeMap<_, _> = [("A".to_string(), "v".repeat(MAX_ENV_BYTES))].into();
        assert_eq!(check_env("env", &env).unwrap_err().code, "env-too-large");
        let tags: BTreeMap<_, _> = (0..=MAX_TAGS)
            .map(|i| (format!("t{i}"), String::new()))
            .collect();
        assert_eq!(
            check_tags("tags", &tags).unwrap_err().field.as_deref(),
            Some("tags")
        );
    }

    #[test]
    fn users_order_their_own_work_without_jumping_the_queue() {
        assert!(check_priority_range(MAX_PRIORITY + 1).is_err());
        assert!(check_priority_range(i32::MIN).is_err());
        assert!(check_user_priority(-5, "q", 0, false).is_ok());
        assert!(check_user_priority(0, "q", 0, false).is_ok());
        let e = check_user_priority(2_000_000_000, "q", 0, false).unwrap_err();
        assert_eq!(
            (e.code.as_str(), e.field.as_deref()),
            ("priority-not-allowed", Some("priority"))
        );
        assert!(check_user_priority(50, "q", 100, false).is_ok());
        assert!(check_user_priority(500, "q", 0, true).is_ok());
    }

    #[test]
    fn prefixes_end_on_character_boundaries() {
        assert_eq!(prefix("héllo", 2), "h");
        assert_eq!(prefix("héllo", 3), "hé");
        assert_eq!(prefix("hi", 10), "hi");
    }
}
