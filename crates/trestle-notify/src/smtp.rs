//! Email over SMTP with lettre: STARTTLS (required), implicit TLS, or
//! (to loopback only, when allowed) none; authentication when a user name
//! is set; a plain-text and an HTML part; the delivery id as the
//! Message-ID. The SMTP host is resolved and checked here and the
//! connection made to the checked address (TLS still verifies the name).

use crate::http::Lookup;
use crate::{Outgoing, SendError, SenderSettings};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use trestle_core::notify::address::{check_ip, plain_http_allowed};
use trestle_core::notify::render;
use trestle_core::notify::target::SmtpTls;

/// Sends email.
#[derive(Debug, Clone)]
pub struct SmtpSender {
    settings: SenderSettings,
    lookup: Lookup,
}

fn mailbox(a: &str) -> Result<Mailbox, SendError> {
    a.parse()
        .map_err(|e| SendError::Config(format!("address `{a}`: {e}")))
}

impl SmtpSender {
    /// A sender.
    pub fn new(settings: SenderSettings, lookup: Lookup) -> SmtpSender {
        SmtpSender { settings, lookup }
    }

    /// Sends the message to `o.to`.
    pub async fn send(&self, o: &Outgoing<'_>) -> Result<(), SendError> {
        let smtp = o
            .config
            .smtp
            .as_ref()
            .ok_or_else(|| SendError::Config("no SMTP settings".into()))?;
        if o.to.is_empty() {
            return Err(SendError::Config("no recipient address".into()));
        }
        let ips = self
            .lookup
            .resolve(&smtp.host)
            .await
            .map_err(SendError::Connect)?;
        let policy = o.config.policy;
        let ip = ips
            .iter()
            .copied()
            .find(|ip| {
                check_ip(*ip, &policy, "smtp_host").is_ok()
                    && (smtp.tls != SmtpTls::None || plain_http_allowed(*ip, &policy))
            })
            .ok_or_else(|| {
                SendError::Refused(format!(
                    "{} resolves to {ips:?}, none of which may be used",
                    smtp.host
                ))
            })?;
        let mail = render::email(&o.message);
        let mut b = Message::builder()
            .from(mailbox(&smtp.from)?)
            .subject(mail.subject)
            .message_id(Some(format!("<{}@trestle>", o.message.id)));
        for to in o.to {
            b = b.to(mailbox(to)?);
        }
        let msg = b
            .multipart(MultiPart::alternative_plain_html(mail.text, mail.html))
            .map_err(|e| SendError::Config(e.to_string()))?;
        let tls = |host: &str| {
            let mut b = TlsParameters::builder(host.to_string());
            if let Some(pem) = &smtp.ca {
                let cert = Certificate::from_pem(pem.as_bytes())
                    .map_err(|e| SendError::Config(format!("smtp_ca: {e}")))?;
                b = b.add_root_certificate(cert);
            }
            b.build().map_err(|e| SendError::Config(e.to_string()))
        };
        let tls = match smtp.tls {
            SmtpTls::Starttls => Tls::Required(tls(&smtp.host)?),
            SmtpTls::Implicit => Tls::Wrapper(tls(&smtp.host)?),
            SmtpTls::None => Tls::None,
        };
        let mut t = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(ip.to_string())
            .port(smtp.port)
            .tls(tls)
            .timeout(Some(self.settings.timeout));
        if let Some(user) = &smtp.username {
            t = t.credentials(Credentials::new(
                user.clone(),
                o.secrets.smtp_password.clone().unwrap_or_default(),
            ));
        }
        let transport = t.build();
        match tokio::time::timeout(self.settings.timeout, transport.send(msg)).await {
            Err(_) => Err(SendError::Timeout(self.settings.timeout)),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) if e.is_transient() || e.is_permanent() => {
                Err(SendError::Smtp(e.to_string()))
            }
            Ok(Err(e)) => Err(SendError::Connect(e.to_string())),
        }
    }
}
