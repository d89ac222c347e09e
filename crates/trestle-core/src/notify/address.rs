//! Which network addresses a notification may be sent to. The senders
//! resolve a target's host themselves and ask [`check_ip`] about each
//! address they are about to connect to, so a name that resolves to a
//! refused address (DNS rebinding) is refused too; [`check_url`] checks
//! what can be known before that (scheme, form, literal addresses).

use crate::error::ValidationError;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What an admin allows beyond public HTTPS addresses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AddressPolicy {
    /// Loopback addresses (127.0.0.0/8, ::1), and plain HTTP to them.
    #[serde(default)]
    pub allow_loopback: bool,
    /// Private addresses (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7).
    #[serde(default)]
    pub allow_private: bool,
    /// Link-local addresses, cloud metadata endpoints among them
    /// (169.254.0.0/16, fe80::/10).
    #[serde(default)]
    pub allow_link_local: bool,
}

/// What kind of address `ip` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    /// Routable on the internet.
    Public,
    /// This host.
    Loopback,
    /// A private network.
    Private,
    /// Link-local.
    LinkLocal,
    /// A cloud metadata endpoint (169.254.169.254, fd00:ec2::254).
    Metadata,
    /// Unspecified, multicast, broadcast or reserved: never a target.
    Unusable,
}

fn class_v4(ip: Ipv4Addr) -> AddressClass {
    let o = ip.octets();
    if ip == Ipv4Addr::new(169, 254, 169, 254) {
        AddressClass::Metadata
    } else if ip.is_loopback() {
        AddressClass::Loopback
    } else if ip.is_link_local() {
        AddressClass::LinkLocal
    } else if ip.is_private() || (o[0] == 100 && (o[1] & 0xc0) == 64) {
        AddressClass::Private
    } else if ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_broadcast()
        || o[0] == 0
        || o[0] >= 240
        || ip.is_documentation()
    {
        AddressClass::Unusable
    } else {
        AddressClass::Public
    }
}

/// Classifies an address (IPv4-mapped IPv6 addresses as their IPv4).
pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => class_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return class_v4(v4);
            }
            let s = v6.segments();
            if v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
                AddressClass::Metadata
            } else if v6.is_loopback() {
                AddressClass::Loopback
            } else if (s[0] & 0xffc0) == 0xfe80 {
                AddressClass::LinkLocal
            } else if (s[0] & 0xfe00) == 0xfc00 {
                AddressClass::Private
            } else if v6.is_unspecified() || v6.is_multicast() || s[0] == 0x2001 && s[1] == 0xdb8 {
                AddressClass::Unusable
            } else {
                AddressClass::Public
            }
        }
    }
}

/// Whether a sender may connect to `ip` under `policy`; the error names
/// `field` and says which kind of address was refused.
pub fn check_ip(ip: IpAddr, policy: &AddressPolicy, field: &str) -> Result<(), ValidationError> {
    let refuse = |what: &str, how: &str| {
        Err(ValidationError::new(
            "address-refused",
            field,
            format!("{ip} is {what}; notifications are not sent there{how}"),
        ))
    };
    match classify(ip) {
        AddressClass::Public => Ok(()),
        AddressClass::Loopback if policy.allow_loopback => Ok(()),
        AddressClass::Loopback => refuse("a loopback address", " unless an admin allows loopback"),
        AddressClass::Private if policy.allow_private => Ok(()),
        AddressClass::Private => refuse(
            "a private address",
            " unless an admin allows private addresses",
        ),
        AddressClass::LinkLocal | AddressClass::Metadata if policy.allow_link_local => Ok(()),
        AddressClass::LinkLocal => refuse(
            "a link-local address",
            " unless an admin allows link-local addresses",
        ),
        AddressClass::Metadata => refuse(
            "a cloud metadata address",
            " unless an admin allows link-local addresses",
        ),
        AddressClass::Unusable => refuse("not a usable unicast address", ""),
    }
}

/// A URL a notification may be posted to, as far as can be told before
/// connecting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetUrl {
    /// Whether it is plain HTTP (allowed only to loopback, when the policy
    /// allows loopback; checked again on the connected address).
    pub plain_http: bool,
    /// The host as written.
    pub host: String,
    /// The port.
    pub port: u16,
}

/// Longest URL accepted.
pub const MAX_URL: usize = 2048;

/// Checks a webhook URL: well-formed, `https` (or `http` to a loopback
/// host when loopback is allowed), no credentials in it, and a literal
/// address that [`check_ip`] accepts.
pub fn check_url(
    raw: &str,
    policy: &AddressPolicy,
    field: &str,
) -> Result<TargetUrl, ValidationError> {
    let bad = |m: String| Err(ValidationError::new("invalid-url", field, m));
    if raw.len() > MAX_URL {
        return bad(format!("the URL is longer than {MAX_URL} characters"));
    }
    let url = match url::Url::parse(raw) {
        Ok(u) => u,
        Err(e) => return bad(format!("`{}` is not a URL: {e}", shorten(raw))),
    };
    let plain_http = match url.scheme() {
        "https" => false,
        "http" => true,
        s => return bad(format!("the scheme must be https, not `{s}`")),
    };
    if !url.username().is_empty() || url.password().is_some() {
        return bad("the URL must not carry a user name or password".into());
    }
    let Some(host) = url.host() else {
        return bad("the URL has no host".into());
    };
    let literal: Option<IpAddr> = match &host {
        url::Host::Ipv4(a) => Some(IpAddr::V4(*a)),
        url::Host::Ipv6(a) => Some(IpAddr::V6(*a)),
        url::Host::Domain(_) => None,
    };
    let host_text = match &host {
        url::Host::Ipv6(a) => a.to_string(),
        h => h.to_string(),
    };
    if let Some(ip) = literal {
        check_ip(ip, policy, field)?;
    }
    if plain_http {
        let loopback_host = match literal {
            Some(ip) => classify(ip) == AddressClass::Loopback,
            None => host_text.eq_ignore_ascii_case("localhost"),
        };
        if !(loopback_host && policy.allow_loopback) {
            return Err(ValidationError::new(
                "plain-http",
                field,
                "plain HTTP is refused: use https (http only to loopback, when an admin allows it)",
            ));
        }
    }
    Ok(TargetUrl {
        plain_http,
        port: url.port_or_known_default().unwrap_or(443),
        host: host_text,
    })
}

/// Whether plain HTTP may go to the connected address `ip`.
pub fn plain_http_allowed(ip: IpAddr, policy: &AddressPolicy) -> bool {
    policy.allow_loopback && classify(ip) == AddressClass::Loopback
}

fn shorten(s: &str) -> String {
    s.chars().take(80).collect()
}

/// Shows a secret URL without its secret part: scheme, host and the
/// first characters of the path (`https://hooks.slack.com/ser…`).
pub fn mask_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(u) => {
            let path: String = u.path().chars().take(4).collect();
            format!("{}://{}{}…", u.scheme(), u.host_str().unwrap_or(""), path)
        }
        Err(_) => "…".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn addresses_are_classified() {
        assert_eq!(classify(ip("8.8.8.8")), AddressClass::Public);
        assert_eq!(classify(ip("169.254.169.254")), AddressClass::Metadata);
        assert_eq!(classify(ip("169.254.1.2")), AddressClass::LinkLocal);
        assert_eq!(classify(ip("10.1.2.3")), AddressClass::Private);
        assert_eq!(classify(ip("172.20.0.1")), AddressClass::Private);
        assert_eq!(classify(ip("192.168.0.1")), AddressClass::Private);
        assert_eq!(classify(ip("100.64.0.1")), AddressClass::Private);
        assert_eq!(classify(ip("127.0.0.1")), AddressClass::Loopback);
        assert_eq!(classify(ip("::1")), AddressClass::Loopback);
        assert_eq!(
            classify(ip("::ffff:169.254.169.254")),
            AddressClass::Metadata
        );
        assert_eq!(classify(ip("fe80::1")), AddressClass::LinkLocal);
        assert_eq!(classify(ip("fd00:ec2::254")), AddressClass::Metadata);
        assert_eq!(classify(ip("fd12::1")), AddressClass::Private);
        assert_eq!(classify(ip("0.0.0.0")), AddressClass::Unusable);
        assert_eq!(classify(ip("224.0.0.1")), AddressClass::Unusable);
        assert_eq!(classify(ip("2606:4700::1111")), AddressClass::Public);
    }

    #[test]
    fn the_policy_decides_what_is_refused() {
        let none = AddressPolicy::default();
        assert!(check_ip(ip("8.8.8.8"), &none, "url").is_ok());
        for a in [
            "169.254.169.254",
            "10.0.0.1",
            "127.0.0.1",
            "fe80::1",
            "0.0.0.0",
        ] {
            let e = check_ip(ip(a), &none, "url").unwrap_err();
            assert_eq!(e.code, "address-refused");
            assert_eq!(e.field.as_deref(), Some("url"));
        }
        let lo = AddressPolicy {
            allow_loopback: true,
            ..Default::default()
        };
        assert!(check_ip(ip("127.0.0.1"), &lo, "url").is_ok());
        assert!(check_ip(ip("10.0.0.1"), &lo, "url").is_err());
        let ll = AddressPolicy {
            allow_link_local: true,
            ..Default::default()
        };
        assert!(check_ip(ip("169.254.169.254"), &ll, "url").is_ok());
    }

    #[test]
    fn urls_are_checked_before_connecting() {
        let none = AddressPolicy::default();
        let lo = AddressPolicy {
            allow_loopback: true,
            ..Default::default()
        };
        assert!(check_url("https://hooks.example.org/x", &none, "url").is_ok());
        let code = |u: &str, p: &AddressPolicy| check_url(u, p, "url").unwrap_err().code;
        assert_eq!(code("not a url", &none), "invalid-url");
        assert_eq!(code("ftp://example.org/", &none), "invalid-url");
        assert_eq!(code("https://u:p@example.org/", &none), "invalid-url");
        assert_eq!(code("http://example.org/", &none), "plain-http");
        assert_eq!(code("http://example.org/", &lo), "plain-http");
        assert_eq!(code("http://127.0.0.1:80/", &none), "address-refused");
        assert!(
            check_url("http://127.0.0.1:8080/hook", &lo, "url")
                .unwrap()
                .plain_http
        );
        assert!(check_url("http://localhost:8080/hook", &lo, "url").is_ok());
        assert_eq!(code("https://169.254.169.254/", &lo), "address-refused");
        assert_eq!(code("https://[fe80::1]/", &none), "address-refused");
        assert_eq!(
            code(&format!("https://e.org/{}", "a".repeat(3000)), &none),
            "invalid-url"
        );
        assert_eq!(
            mask_url("https://hooks.slack.com/services/T000/B000/XXXX"),
            "https://hooks.slack.com/ser…"
        );
    }
}
