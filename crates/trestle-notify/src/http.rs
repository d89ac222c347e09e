//! Webhook senders (Slack, Teams, generic) over reqwest, with name
//! resolution that checks every resolved address against the target's
//! policy before reqwest may connect to it: a name that resolves to a
//! metadata or private address (DNS rebinding) is refused at connect
//! time, not only when the target is saved. No proxy is used and
//! redirects are not followed, so the checked address is the one
//! connected to.

use crate::{Outgoing, SendError, SenderSettings};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use trestle_core::notify::address::{AddressPolicy, check_ip, check_url, plain_http_allowed};
use trestle_core::notify::render;
use trestle_core::notify::sign;
use trestle_core::notify::target::TargetKind;

/// How names are resolved.
#[derive(Debug, Clone)]
pub enum Lookup {
    /// The system resolver (`getaddrinfo`).
    System,
    /// A fixed table (name -> addresses), for tests and pinned hosts;
    /// names not in it go to the system resolver.
    Table(Arc<HashMap<String, Vec<IpAddr>>>),
}

impl Lookup {
    /// The addresses of `host`.
    pub async fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, String> {
        if let Ok(ip) = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            return Ok(vec![ip]);
        }
        if let Lookup::Table(t) = self
            && let Some(a) = t.get(&host.to_ascii_lowercase())
        {
            return Ok(a.clone());
        }
        tokio::net::lookup_host((host, 0))
            .await
            .map(|it| it.map(|a| a.ip()).collect())
            .map_err(|e| format!("cannot resolve `{host}`: {e}"))
    }
}

/// Resolves with [`Lookup`] and keeps only the addresses the policy
/// allows (loopback only, for plain HTTP); none left is an error.
struct CheckedResolver {
    lookup: Lookup,
    policy: AddressPolicy,
    plain_http: bool,
}

impl CheckedResolver {
    async fn allowed(&self, host: &str) -> Result<Vec<IpAddr>, String> {
        let all = self.lookup.resolve(host).await?;
        let mut ok = Vec::new();
        let mut why = None;
        for ip in all {
            match check_ip(ip, &self.policy, "url") {
                Ok(()) if self.plain_http && !plain_http_allowed(ip, &self.policy) => {
                    why = Some(format!("{host} is {ip}: plain HTTP only to loopback"));
                }
                Ok(()) => ok.push(ip),
                Err(e) => why = Some(format!("{host}: {}", e.message)),
            }
        }
        if ok.is_empty() {
            return Err(why.unwrap_or_else(|| format!("`{host}` has no address")));
        }
        Ok(ok)
    }
}

/// The marker an address refusal carries through reqwest's error chain.
const REFUSED: &str = "trestle-address-refused: ";

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let me = CheckedResolver {
            lookup: self.lookup.clone(),
            policy: self.policy,
            plain_http: self.plain_http,
        };
        let host = name.as_str().to_string();
        Box::pin(async move {
            let ips = me.allowed(&host).await.map_err(
                |e| -> Box<dyn std::error::Error + Send + Sync> { format!("{REFUSED}{e}").into() },
            )?;
            let addrs: Addrs = Box::new(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// Sends webhooks; one client per (policy, plain HTTP) so connections are
/// reused.
#[derive(Clone)]
pub struct HttpSender {
    settings: SenderSettings,
    lookup: Lookup,
    clients: Arc<Mutex<HashMap<(AddressPolicy, bool), reqwest::Client>>>,
}

impl std::fmt::Debug for HttpSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSender").finish_non_exhaustive()
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

impl HttpSender {
    /// A sender.
    pub fn new(settings: SenderSettings, lookup: Lookup) -> HttpSender {
        HttpSender {
            settings,
            lookup,
            clients: Arc::default(),
        }
    }

    fn client(
        &self,
        policy: AddressPolicy,
        plain_http: bool,
    ) -> Result<reqwest::Client, SendError> {
        let mut map = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = map.get(&(policy, plain_http)) {
            return Ok(c.clone());
        }
        let c = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(self.settings.connect_timeout)
            .timeout(self.settings.timeout)
            .user_agent(self.settings.user_agent.clone())
            .dns_resolver(Arc::new(CheckedResolver {
                lookup: self.lookup.clone(),
                policy,
                plain_http,
            }))
            .build()
            .map_err(|e| SendError::Config(e.to_string()))?;
        map.insert((policy, plain_http), c.clone());
        Ok(c)
    }

    /// Posts the message in its target's format.
    pub async fn send(&self, o: &Outgoing<'_>) -> Result<(), SendError> {
        let url = o
            .secrets
            .url
            .as_deref()
            .ok_or_else(|| SendError::Config("no URL".into()))?;
        let policy = o.config.policy;
        // Literal addresses never reach the resolver: checked here.
        let checked = check_url(url, &policy, "url").map_err(|e| SendError::Refused(e.message))?;
        let m = &o.message;
        let body = match o.config.kind {
            TargetKind::Slack => render::slack(m),
            TargetKind::Teams => render::teams(m),
            _ => render::webhook(m),
        };
        let body = serde_json::to_vec(&body).map_err(|e| SendError::Config(e.to_string()))?;
        let client = self.client(policy, checked.plain_http)?;
        let mut req = client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", m.id);
        if o.config.kind == TargetKind::Webhook {
            let secret = o
                .secrets
                .signing_secret
                .as_deref()
                .and_then(sign::secret_bytes)
                .ok_or_else(|| SendError::Config("no signing secret".into()))?;
            req = req.header("webhook-timestamp", o.now_s.to_string()).header(
                "webhook-signature",
                sign::signature(&secret, m.id, o.now_s, &body),
            );
        }
        let resp = req.body(body).send().await.map_err(|e| {
            let text = chain(&e);
            if let Some(i) = text.find(REFUSED) {
                SendError::Refused(text[i + REFUSED.len()..].to_string())
            } else if e.is_timeout() {
                SendError::Timeout(self.settings.timeout)
            } else {
                SendError::Connect(text)
            }
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let text = match tokio::time::timeout(self.settings.timeout, resp.text()).await {
            Ok(Ok(t)) => t.chars().take(200).collect(),
            _ => String::new(),
        };
        Err(SendError::Status {
            status: status.as_u16(),
            body: text,
        })
    }
}
