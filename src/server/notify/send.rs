//! Delivering one message to one service: SMTP with lettre, the HTTP
//! services with ureq. Each call is bounded by the service's `timeout`; a
//! failure says whether trying again can help (a refused connection, a
//! timeout, a 5xx or 429 can; a 4xx answer to what we sent cannot).

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{Message, SmtpTransport, Transport};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::config::{EmailSettings, MattermostSettings, PushoverSettings, Security, ServiceKind, SignalSettings};
use crate::server::model::Level;
use crate::wire::truncate_chars;

/// A message on its way to one service; kept on disk until delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outgoing {
    pub id: u64,
    pub service: String,
    /// When it was made (Unix seconds); it expires `notify_max_age` later.
    pub created: f64,
    /// The worst level it tells of (Pushover's priority follows it).
    pub level: Level,
    /// One line a person can scan in an inbox.
    pub subject: String,
    pub body: String,
}

/// Why a delivery failed, in the service's own words.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub error: String,
    /// False when the service refused what we sent: trying again cannot help.
    pub retry: bool,
}

impl Failure {
    fn transient(error: impl Into<String>) -> Failure {
        Failure { error: error.into(), retry: true }
    }
}

/// Delivers `message` through `service`, within `timeout`.
pub fn deliver(service: &ServiceKind, timeout: Duration, message: &Outgoing) -> Result<(), Failure> {
    match service {
        ServiceKind::Email(settings) => email(settings, timeout, message),
        ServiceKind::Pushover(settings) => pushover(settings, timeout, message),
        ServiceKind::Mattermost(settings) => mattermost(settings, timeout, message),
        ServiceKind::Signal(settings) => signal(settings, timeout, message),
    }
}

fn email(settings: &EmailSettings, timeout: Duration, message: &Outgoing) -> Result<(), Failure> {
    let permanent = |error: String| Failure { error, retry: false };
    let mut builder = Message::builder()
        .from(settings.from.parse().map_err(|e| permanent(format!("from address: {e}")))?)
        .subject(message.subject.as_str())
        .header(ContentType::TEXT_PLAIN);
    for to in &settings.to {
        builder = builder.to(to.parse().map_err(|e| permanent(format!("address {to}: {e}")))?);
    }
    let mail = builder.body(message.body.clone()).map_err(|e| permanent(format!("build message: {e}")))?;
    let tls = || -> Result<TlsParameters, Failure> {
        let mut params = TlsParameters::builder(settings.server.clone());
        if let Some(pem) = &settings.ca_pem {
            let cert = Certificate::from_pem(pem).map_err(|e| permanent(format!("ca_file: {e}")))?;
            params = params.add_root_certificate(cert);
        }
        params.build_rustls().map_err(|e| permanent(format!("TLS: {e}")))
    };
    let mut transport = SmtpTransport::builder_dangerous(settings.server.as_str())
        .port(settings.port)
        .timeout(Some(timeout))
        .hello_name(ClientId::Domain(hello_name()));
    transport = match settings.security {
        Security::Starttls => transport.tls(Tls::Required(tls()?)),
        Security::Tls => transport.tls(Tls::Wrapper(tls()?)),
        Security::None => transport,
    };
    if let Some((user, password)) = &settings.login {
        transport = transport.credentials(Credentials::new(user.clone(), password.clone()));
    }
    transport.build().send(&mail).map(|_| ()).map_err(|e| Failure { error: e.to_string(), retry: !e.is_permanent() })
}

/// The name hbd greets SMTP servers with: this host's name, if it is one.
fn hello_name() -> String {
    sysinfo::System::host_name()
        .filter(|name| crate::wire::is_valid_host_name(name))
        .unwrap_or_else(|| "localhost".to_string())
}

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder().timeout_global(Some(timeout)).http_status_as_error(false).build().into()
}

/// A service's answer: 2xx is delivered; the status and body otherwise.
fn answer(result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Result<(), Failure> {
    let mut response = result.map_err(|e| Failure::transient(e.to_string()))?;
    let status = response.status().as_u16();
    if (200..300).contains(&status) {
        return Ok(());
    }
    let body = response.body_mut().read_to_string().unwrap_or_default();
    let error = format!("HTTP {status}: {}", truncate_chars(body.trim(), 500));
    Err(Failure { error, retry: status == 429 || status >= 500 })
}

/// Pushover's messages API: a form with token, user, title, message and a
/// priority by level (-1 for recoveries, 0 warnings, 1 critical).
fn pushover(settings: &PushoverSettings, timeout: Duration, message: &Outgoing) -> Result<(), Failure> {
    let priority = match message.level {
        Level::Critical => "1",
        Level::Warning | Level::Unknown => "0",
        Level::Ok => "-1",
    };
    // Pushover's limits: 250 characters of title, 1024 of message.
    let mut form = vec![
        ("token", settings.token.as_str()),
        ("user", settings.user.as_str()),
        ("title", truncate_chars(&message.subject, 250)),
        ("message", truncate_chars(&message.body, 1024)),
        ("priority", priority),
    ];
    if let Some(device) = &settings.device {
        form.push(("device", device));
    }
    if let Some(sound) = &settings.sound {
        form.push(("sound", sound));
    }
    answer(agent(timeout).post(&settings.url).send_form(form))
}

/// Mattermost's incoming webhook: `{"text": …}` with optional channel and username.
fn mattermost(settings: &MattermostSettings, timeout: Duration, message: &Outgoing) -> Result<(), Failure> {
    let mut payload = json!({"text": format!("{}\n\n{}", message.subject, message.body)});
    if let Some(channel) = &settings.channel {
        payload["channel"] = json!(channel);
    }
    if let Some(username) = &settings.username {
        payload["username"] = json!(username);
    }
    let request = agent(timeout).post(&settings.webhook_url).header("Content-Type", "application/json");
    answer(request.send(payload.to_string()))
}

/// The signal-cli REST API's send endpoint: `POST URL/v2/send` with message,
/// number and recipients.
fn signal(settings: &SignalSettings, timeout: Duration, message: &Outgoing) -> Result<(), Failure> {
    let payload = json!({
        "message": format!("{}\n\n{}", message.subject, message.body),
        "number": settings.number,
        "recipients": settings.recipients,
    });
    let request = agent(timeout).post(&format!("{}/v2/send", settings.url)).header("Content-Type", "application/json");
    answer(request.send(payload.to_string()))
}
