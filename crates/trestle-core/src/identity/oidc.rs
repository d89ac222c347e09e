//! OpenID Connect sign-in, the pure part: the checks an ID token's claims
//! must pass once its signature is verified (issuer, audience, authorized
//! party, expiry, issue time, nonce), the merge of the userinfo answer,
//! and the mapping of claims to an [`ExternalIdentity`]. The protocol
//! (discovery, keys, the code exchange) lives in `trestle-service`.

use crate::identity::external::ExternalIdentity;
use serde_json::{Map, Value};

/// Which claims hold which attribute (`[[oidc]] *_claim`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimNames {
    /// The Trestle user name (default `preferred_username`).
    pub username: String,
    /// The email address (default `email`).
    pub email: String,
    /// The display name (default `name`).
    pub name: String,
    /// The groups (default `groups`): an array of strings, or one string.
    pub groups: String,
    /// The Unix uid (none by default): a number or a numeric string.
    pub uid: Option<String>,
    /// The Unix account name (none by default).
    pub unix_name: Option<String>,
}

impl Default for ClaimNames {
    fn default() -> Self {
        ClaimNames {
            username: "preferred_username".into(),
            email: "email".into(),
            name: "name".into(),
            groups: "groups".into(),
            uid: None,
            unix_name: None,
        }
    }
}

/// Why an ID token (or what the provider said with it) was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// A stable code (`oidc-wrong-audience`, `oidc-expired`, ...).
    pub code: &'static str,
    /// What was wrong, for the user and the log (never a secret).
    pub message: String,
}

fn refuse(code: &'static str, message: impl Into<String>) -> Refused {
    Refused {
        code,
        message: message.into(),
    }
}

/// What an ID token must say.
#[derive(Debug, Clone)]
pub struct Expected<'a> {
    /// The provider's issuer, exactly as discovery gave it.
    pub issuer: &'a str,
    /// This client's id.
    pub client_id: &'a str,
    /// The nonce stored with the pending login.
    pub nonce: &'a str,
    /// Now, in seconds since the epoch.
    pub now_secs: i64,
    /// Clock skew allowed on `exp` and `iat`, in seconds.
    pub leeway_secs: i64,
}

/// Compares two strings in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn number(claims: &Map<String, Value>, name: &str) -> Option<i64> {
    let v = claims.get(name)?;
    v.as_i64().or_else(|| v.as_f64().map(|f| f as i64))
}

/// Checks the claims of an ID token whose signature was verified: `iss`
/// is the issuer; `aud` is the client id or a list holding it, and with
/// more than one audience `azp` is the client id (as it must be whenever
/// present); `exp` is in the future and `iat` not in the future (both with
/// the leeway); `sub` is present; `nonce` is the stored one.
pub fn check_id_token(claims: &Map<String, Value>, want: &Expected<'_>) -> Result<(), Refused> {
    match claims.get("iss").and_then(Value::as_str) {
        Some(i) if i == want.issuer => {}
        other => {
            return Err(refuse(
                "oidc-wrong-issuer",
                format!(
                    "the ID token was issued by {}, not by {}",
                    other.unwrap_or("no one"),
                    want.issuer
                ),
            ));
        }
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !audiences.contains(&want.client_id) {
        return Err(refuse(
            "oidc-wrong-audience",
            "the ID token was issued for another client (its audience is not this client id)",
        ));
    }
    match claims.get("azp").and_then(Value::as_str) {
        Some(azp) if azp != want.client_id => {
            return Err(refuse(
                "oidc-wrong-audience",
                "the ID token's authorized party is another client",
            ));
        }
        None if audiences.len() > 1 => {
            return Err(refuse(
                "oidc-wrong-audience",
                "the ID token has several audiences and no authorized party",
            ));
        }
        _ => {}
    }
    let Some(exp) = number(claims, "exp") else {
        return Err(refuse("oidc-expired", "the ID token has no expiry"));
    };
    if exp + want.leeway_secs <= want.now_secs {
        return Err(refuse("oidc-expired", "the ID token has expired"));
    }
    let Some(iat) = number(claims, "iat") else {
        return Err(refuse("oidc-bad-token", "the ID token has no issue time"));
    };
    if iat - want.leeway_secs > want.now_secs {
        return Err(refuse(
            "oidc-bad-token",
            "the ID token was issued in the future (check the clocks)",
        ));
    }
    if claims
        .get("sub")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err(refuse("oidc-bad-token", "the ID token names no subject"));
    }
    match claims.get("nonce").and_then(Value::as_str) {
        Some(n) if same_secret(n, want.nonce) => Ok(()),
        _ => Err(refuse(
            "oidc-bad-nonce",
            "the ID token's nonce is not the one of this sign-in (a replayed or foreign token)",
        )),
    }
}

/// Adds what the userinfo endpoint said to the ID token's claims (the ID
/// token's win). Its `sub` must be the ID token's, or it is about someone
/// else and refused.
pub fn merge_userinfo(
    claims: &mut Map<String, Value>,
    userinfo: Map<String, Value>,
) -> Result<(), Refused> {
    if userinfo.get("sub") != claims.get("sub") {
        return Err(refuse(
            "oidc-bad-userinfo",
            "the userinfo endpoint answered about another subject",
        ));
    }
    for (k, v) in userinfo {
        claims.entry(k).or_insert(v);
    }
    Ok(())
}

fn text(claims: &Map<String, Value>, name: &str) -> Option<String> {
    match claims.get(name)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        _ => None,
    }
}

/// The user an ID token (with userinfo merged) describes, for the
/// provider named `provider` (source `oidc:NAME`). The user name is the
/// username claim in lower case; without one the sign-in is refused.
pub fn identity_from_claims(
    provider: &str,
    names: &ClaimNames,
    claims: &Map<String, Value>,
) -> Result<ExternalIdentity, Refused> {
    let subject = text(claims, "sub")
        .ok_or_else(|| refuse("oidc-bad-token", "the ID token names no subject"))?;
    let username = text(claims, &names.username).ok_or_else(|| {
        refuse(
            "oidc-no-username",
            format!(
                "the provider gave no `{}` claim to take the user name from (oidc.username_claim)",
                names.username
            ),
        )
    })?;
    let username = username.to_ascii_lowercase();
    if let Err(e) = crate::identity::validate_name("username", &username) {
        return Err(refuse(
            "oidc-bad-username",
            format!(
                "the provider's `{}` claim gives the user name `{}`, which Trestle cannot use: {}; point oidc.username_claim at a claim with a plain user name (for example `preferred_username`, or a mapping of `email` on the provider's side)",
                names.username,
                username.escape_debug(),
                e.message
            ),
        ));
    }
    let groups = match claims.get(&names.groups) {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    };
    let uid = names.uid.as_ref().and_then(|c| match claims.get(c)? {
        Value::Number(n) => n.as_u64().and_then(|u| u32::try_from(u).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    });
    Ok(ExternalIdentity {
        source: format!("oidc:{provider}"),
        subject,
        username,
        display_name: text(claims, &names.name),
        email: text(claims, &names.email),
        unix_name: names.unix_name.as_ref().and_then(|c| text(claims, c)),
        uid,
        groups,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn good() -> Map<String, Value> {
        claims(
            json!({"iss": "https://idp", "aud": "trestle", "sub": "u1", "exp": 1100,
            "iat": 1000, "nonce": "n-1"}),
        )
    }

    fn want() -> Expected<'static> {
        Expected {
            issuer: "https://idp",
            client_id: "trestle",
            nonce: "n-1",
            now_secs: 1050,
            leeway_secs: 30,
        }
    }

    fn code(c: Map<String, Value>) -> &'static str {
        check_id_token(&c, &want()).map_or_else(|e| e.code, |()| "ok")
    }

    #[test]
    fn a_good_token_passes_and_each_claim_is_checked() {
        assert_eq!(code(good()), "ok");
        let with = |k: &str, v: Value| {
            let mut c = good();
            c.insert(k.into(), v);
            c
        };
        assert_eq!(
            code(with("iss", json!("https://evil"))),
            "oidc-wrong-issuer"
        );
        assert_eq!(code(with("aud", json!("other"))), "oidc-wrong-audience");
        assert_eq!(
            code(with("aud", json!(["trestle", "other"]))),
            "oidc-wrong-audience",
            "several audiences need azp"
        );
        let mut multi = with("aud", json!(["trestle", "other"]));
        multi.insert("azp".into(), json!("trestle"));
        assert_eq!(code(multi.clone()), "ok");
        multi.insert("azp".into(), json!("other"));
        assert_eq!(code(multi), "oidc-wrong-audience");
        assert_eq!(code(with("exp", json!(1019))), "oidc-expired");
        assert_eq!(code(with("exp", json!(1021))), "ok", "within the leeway");
        assert_eq!(code(with("iat", json!(1090))), "oidc-bad-token");
        assert_eq!(code(with("nonce", json!("n-2"))), "oidc-bad-nonce");
        let mut none = good();
        none.remove("nonce");
        assert_eq!(code(none), "oidc-bad-nonce");
        let mut nosub = good();
        nosub.remove("sub");
        assert_eq!(code(nosub), "oidc-bad-token");
    }

    #[test]
    fn userinfo_about_someone_else_is_refused() {
        let mut c = good();
        merge_userinfo(
            &mut c,
            claims(json!({"sub": "u1", "groups": ["a"], "nonce": "x"})),
        )
        .unwrap();
        assert_eq!(c["groups"], json!(["a"]));
        assert_eq!(c["nonce"], json!("n-1"), "the ID token's claims win");
        let e = merge_userinfo(&mut c, claims(json!({"sub": "u2"}))).unwrap_err();
        assert_eq!(e.code, "oidc-bad-userinfo");
    }

    #[test]
    fn claims_map_to_an_identity() {
        let names = ClaimNames {
            uid: Some("uid_number".into()),
            unix_name: Some("unix".into()),
            ..ClaimNames::default()
        };
        let c = claims(
            json!({"sub": "u1", "preferred_username": "Ada", "email": "ada@uni",
            "name": "Ada L", "groups": ["hpc", 3], "uid_number": "12001", "unix": "alove"}),
        );
        let who = identity_from_claims("campus", &names, &c).unwrap();
        assert_eq!(who.source, "oidc:campus");
        assert_eq!(who.username, "ada");
        assert_eq!(who.groups, vec!["hpc".to_string()]);
        assert_eq!(who.uid, Some(12001));
        assert_eq!(who.unix_name.as_deref(), Some("alove"));
        assert_eq!(who.email.as_deref(), Some("ada@uni"));
        let c = claims(json!({"sub": "u1", "groups": "one"}));
        let e = identity_from_claims("campus", &names, &c).unwrap_err();
        assert_eq!(e.code, "oidc-no-username");
        // A claim that is no usable user name points at the setting.
        let c = claims(json!({"sub": "u1", "preferred_username": "Ada Lovelace"}));
        let e = identity_from_claims("campus", &names, &c).unwrap_err();
        assert_eq!(e.code, "oidc-bad-username");
        assert!(
            e.message.contains("oidc.username_claim") && e.message.contains("ada lovelace"),
            "{}",
            e.message
        );
        assert!(e.message.contains("preferred_username"));
    }
}
