use super::*;

const NOW: i64 = 1_800_000_000_000;

fn params(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn classifies_requests() {
    let c = |m, p| classify(m, p);
    assert_eq!(c("POST", "/api/v1/jobs"), ("job.submit".into(), None));
    assert_eq!(c("GET", "/api/v1/jobs"), ("job.list".into(), None));
    assert_eq!(
        c("POST", "/api/v1/jobs/12/cancel"),
        ("job.cancel".into(), Some("job:12".into()))
    );
    assert_eq!(
        c("GET", "/api/v1/jobs/12/outputs/a/b.txt"),
        ("job.outputs".into(), Some("job:12".into()))
    );
    assert_eq!(
        c("PATCH", "/api/v1/users/alice"),
        ("user.update".into(), Some("user:alice".into()))
    );
    assert_eq!(
        c("DELETE", "/api/v1/tokens/tok-1"),
        ("token.revoke".into(), Some("token:tok-1".into()))
    );
    assert_eq!(
        c("POST", "/api/v1/workers/w-1/lease"),
        ("worker.lease".into(), Some("worker:w-1".into()))
    );
    assert_eq!(c("POST", "/api/v1/login"), ("login".into(), None));
    assert_eq!(c("GET", "/api/v1/nowhere"), ("other".into(), None));
    // The web portal's requests.
    assert_eq!(c("GET", "/"), ("portal.dashboard".into(), None));
    assert_eq!(c("POST", "/ui/login"), ("portal.login".into(), None));
    assert_eq!(
        c("GET", "/ui/login/oidc/campus/callback"),
        (
            "portal.login-oidc-callback".into(),
            Some("oidc:campus".into())
        )
    );
    assert_eq!(
        c("GET", "/ui/login/oidc/campus").0,
        "portal.login-oidc".to_string()
    );
    assert_eq!(
        c("POST", "/ui/jobs/12/cancel"),
        ("portal.job.cancel".into(), Some("job:12".into()))
    );
    assert_eq!(c("POST", "/ui/submit"), ("portal.job.submit".into(), None));
}

#[test]
fn filters_from_params() {
    let f = AuditFilter::from_params(&BTreeMap::new(), NOW).unwrap();
    assert_eq!(f.since, Some(NOW - 7 * 86_400_000), "default: a week");
    assert_eq!(f.limit, 100);
    let f = AuditFilter::from_params(
        &params(&[
            ("principal", "alice"),
            ("status", "4xx"),
            ("since", "2h"),
            ("method", "post"),
            ("group-by", "source-ip"),
        ]),
        NOW,
    )
    .unwrap();
    assert_eq!(f.principal.as_deref(), Some("alice"));
    assert_eq!((f.status_min, f.status_max), (Some(400), Some(499)));
    assert_eq!(f.since, Some(NOW - 7_200_000));
    assert_eq!(f.method.as_deref(), Some("POST"));
    assert_eq!(f.group_by, Some(GroupBy::SourceIp));
    let f = AuditFilter::from_params(&params(&[("status", "401"), ("since", "all")]), NOW).unwrap();
    assert_eq!(
        (f.status_min, f.status_max, f.since),
        (Some(401), Some(401), None)
    );
    for (k, v) in [
        ("status", "4x"),
        ("status", "500-400"),
        ("since", "yesterday"),
        ("limit", "0"),
        ("group-by", "colour"),
        ("bogus", "1"),
    ] {
        let e = AuditFilter::from_params(&params(&[(k, v)]), NOW).unwrap_err();
        assert_eq!(e.field.as_deref(), Some(k), "{k}={v}: {e:?}");
    }
}

#[test]
fn named_queries_resolve() {
    let all = builtin_queries();
    let job = all.iter().find(|q| q.name == "job").unwrap();
    let e = resolve(job, &BTreeMap::new()).unwrap_err();
    assert_eq!(e.code, "missing-parameter");
    assert_eq!(e.field.as_deref(), Some("id"));
    let r = resolve(job, &params(&[("id", "42")])).unwrap();
    assert_eq!(r.get("resource").map(String::as_str), Some("job:42"));
    let f = AuditFilter::from_params(&r, NOW).unwrap();
    assert_eq!(f.resource.as_deref(), Some("job:42"));
    assert_eq!(f.since, None, "a job's whole history by default");
    let e = resolve(job, &params(&[("id", "1"), ("colour", "red")])).unwrap_err();
    assert_eq!(e.field.as_deref(), Some("colour"));
    // Every built-in query resolves with its defaults (plus required ones)
    // into a valid filter.
    for q in &all {
        let mut p = BTreeMap::new();
        for (k, d) in &q.params {
            if d.is_none() {
                p.insert(k.clone(), "7".to_string());
            }
        }
        let r = resolve(q, &p).unwrap();
        AuditFilter::from_params(&r, NOW).unwrap_or_else(|e| panic!("{}: {e:?}", q.name));
    }
    let changes = all.iter().find(|q| q.name == "changes").unwrap();
    let f = AuditFilter::from_params(&resolve(changes, &BTreeMap::new()).unwrap(), NOW).unwrap();
    assert!(f.changes_only);
    assert_eq!(f.principal, None, "an empty default drops the filter");
}

#[test]
fn forwarded_for_only_from_trusted_proxies() {
    let trusted = vec![
        Cidr::parse("t", "10.0.0.0/8").unwrap(),
        Cidr::parse("t", "::1").unwrap(),
    ];
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    // An untrusted peer's header is ignored.
    assert_eq!(
        client_ip(ip("203.0.113.9"), Some("1.2.3.4"), &trusted),
        ip("203.0.113.9")
    );
    // A trusted proxy: the rightmost untrusted address wins, so a client
    // cannot prepend a fake one.
    assert_eq!(
        client_ip(
            ip("10.1.2.3"),
            Some("6.6.6.6, 198.51.100.7, 10.9.9.9"),
            &trusted
        ),
        ip("198.51.100.7")
    );
    assert_eq!(client_ip(ip("10.1.2.3"), None, &trusted), ip("10.1.2.3"));
    assert_eq!(
        client_ip(ip("::1"), Some("198.51.100.7"), &trusted),
        ip("198.51.100.7")
    );
    assert_eq!(
        client_ip(ip("10.1.2.3"), Some("garbage"), &trusted),
        ip("10.1.2.3")
    );
    // Nothing trusted: the peer, always.
    assert_eq!(
        client_ip(ip("10.1.2.3"), Some("1.1.1.1"), &[]),
        ip("10.1.2.3")
    );
    assert!(Cidr::parse("t", "10.0.0.0/33").is_err());
    assert!(Cidr::parse("t", "nope").is_err());
    assert!(
        Cidr::parse("t", "0.0.0.0/0")
            .unwrap()
            .contains(ip("8.8.8.8"))
    );
    assert!(
        Cidr::parse("t", "127.0.0.0/8")
            .unwrap()
            .contains(ip("::ffff:127.0.0.1"))
    );
}

#[test]
fn periods() {
    assert_eq!(parse_period("period", "60").unwrap(), 60 * 86_400);
    assert_eq!(parse_period("period", "12h").unwrap(), 12 * 3600);
    assert_eq!(parse_period("period", "2s").unwrap(), 2);
    for bad in ["0", "", "soon", "0s"] {
        assert_eq!(
            parse_period("period", bad).unwrap_err().field.as_deref(),
            Some("period"),
            "{bad}"
        );
    }
}
