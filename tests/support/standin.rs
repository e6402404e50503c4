//! Pushover, Mattermost and Signal on one local port: a stand-in for the
//! hosted services the tests cannot reach, which checks each request
//! against the service's documented API.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

/// One request the stand-in accepted as the service documents it.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub service: &'static str,
    pub fields: Value,
}

/// Pushover, Mattermost and Signal on one local port, each at its path.
/// Requests that do not follow the service's documented format are
/// recorded as `violations` (and answered 400); `fail_next` makes the next
/// N requests answer 500; `hang` makes every request wait forever.
pub struct StandIn {
    pub addr: SocketAddr,
    delivered: Arc<Mutex<Vec<Delivered>>>,
    violations: Arc<Mutex<Vec<String>>>,
    pub fail_next: Arc<AtomicUsize>,
    server: Arc<tiny_http::Server>,
}

impl StandIn {
    pub fn start(hang: bool) -> StandIn {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind stand-in"));
        let addr = server.server_addr().to_ip().expect("an IP address");
        let delivered = Arc::new(Mutex::new(Vec::new()));
        let violations = Arc::new(Mutex::new(Vec::new()));
        let fail_next = Arc::new(AtomicUsize::new(0));
        let (s, d, v, f) = (server.clone(), delivered.clone(), violations.clone(), fail_next.clone());
        std::thread::spawn(move || {
            for mut request in s.incoming_requests() {
                if hang {
                    // Never answered: the connection stays open until hbd gives up.
                    std::mem::forget(request);
                    continue;
                }
                let mut body = String::new();
                let _ = request.as_reader().read_to_string(&mut body);
                let content_type = request
                    .headers()
                    .iter()
                    .find(|h| h.field.equiv("Content-Type"))
                    .map(|h| h.value.to_string())
                    .unwrap_or_default();
                let checked = check(request.method(), request.url(), &content_type, &body);
                let (status, answer) = match checked {
                    Err(why) => {
                        v.lock().unwrap().push(why.clone());
                        (400, json!({"status": 0, "errors": [why]}).to_string())
                    }
                    Ok(_) if f.load(Ordering::SeqCst) > 0 => {
                        f.fetch_sub(1, Ordering::SeqCst);
                        (500, "service unavailable for a while".to_string())
                    }
                    Ok(delivery) => {
                        let status = if delivery.service == "signal" { 201 } else { 200 };
                        d.lock().unwrap().push(delivery);
                        (status, r#"{"status":1,"request":"0f2e6b0a-7d3a-4b29-9bd2-2d1b7c1f0d55"}"#.to_string())
                    }
                };
                let _ = request.respond(tiny_http::Response::from_string(answer).with_status_code(status));
            }
        });
        StandIn { addr, delivered, violations, fail_next, server }
    }

    pub fn delivered(&self, service: &str) -> Vec<Value> {
        self.delivered.lock().unwrap().iter().filter(|d| d.service == service).map(|d| d.fields.clone()).collect()
    }

    /// The text of every Mattermost post, in arrival order.
    pub fn mattermost_texts(&self) -> Vec<String> {
        self.delivered("mattermost").iter().filter_map(|m| m["text"].as_str().map(String::from)).collect()
    }

    /// hbd.yaml's `mattermost:` block for this stand-in.
    pub fn mattermost_config(&self) -> String {
        format!("mattermost: {{webhook_url: 'http://{}/hooks/xyz', timeout: 2}}\n", self.addr)
    }

    pub fn assert_no_violations(&self) {
        let v = self.violations.lock().unwrap();
        assert!(v.is_empty(), "requests not in the services' documented formats: {v:#?}");
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

/// Checks a request against the service's documented API.
fn check(method: &tiny_http::Method, url: &str, content_type: &str, body: &str) -> Result<Delivered, String> {
    if *method != tiny_http::Method::Post {
        return Err(format!("{method} {url}: every service takes POST"));
    }
    match url {
        // https://pushover.net/api: form-encoded token, user, message; title,
        // priority (-2..2), device, sound optional.
        "/1/messages.json" => {
            if !content_type.starts_with("application/x-www-form-urlencoded") {
                return Err(format!("pushover: content type {content_type:?}"));
            }
            let form: HashMap<String, String> = form_decode(body);
            for key in ["token", "user", "message"] {
                if form.get(key).is_none_or(|v| v.is_empty()) {
                    return Err(format!("pushover: no {key}"));
                }
            }
            if form["message"].chars().count() > 1024 || form.get("title").is_some_and(|t| t.chars().count() > 250) {
                return Err("pushover: message over 1024 or title over 250 characters".into());
            }
            if let Some(p) = form.get("priority") {
                if !matches!(p.as_str(), "-2" | "-1" | "0" | "1" | "2") {
                    return Err(format!("pushover: priority {p}"));
                }
            }
            let known = [
                "token",
                "user",
                "message",
                "title",
                "priority",
                "device",
                "sound",
                "url",
                "url_title",
                "html",
                "timestamp",
                "ttl",
            ];
            if let Some(unknown) = form.keys().find(|k| !known.contains(&k.as_str())) {
                return Err(format!("pushover: unknown parameter {unknown}"));
            }
            Ok(Delivered { service: "pushover", fields: json!(form) })
        }
        // Mattermost incoming webhooks: JSON with `text`; channel, username optional.
        "/hooks/xyz" => {
            if !content_type.starts_with("application/json") {
                return Err(format!("mattermost: content type {content_type:?}"));
            }
            let v: Value = serde_json::from_str(body).map_err(|e| format!("mattermost: {e}"))?;
            if v["text"].as_str().is_none_or(|t| t.is_empty()) {
                return Err("mattermost: no text".into());
            }
            Ok(Delivered { service: "mattermost", fields: v })
        }
        // signal-cli-rest-api: POST /v2/send {"message", "number", "recipients": [...]}.
        "/v2/send" => {
            if !content_type.starts_with("application/json") {
                return Err(format!("signal: content type {content_type:?}"));
            }
            let v: Value = serde_json::from_str(body).map_err(|e| format!("signal: {e}"))?;
            let ok = v["message"].as_str().is_some_and(|m| !m.is_empty())
                && v["number"].as_str().is_some_and(|n| n.starts_with('+'))
                && v["recipients"].as_array().is_some_and(|r| !r.is_empty() && r.iter().all(Value::is_string));
            if !ok {
                return Err(format!("signal: needs message, number and recipients: {v}"));
            }
            Ok(Delivered { service: "signal", fields: v })
        }
        other => Err(format!("no such endpoint {other}")),
    }
}

fn form_decode(body: &str) -> HashMap<String, String> {
    let decode = |s: &str| {
        let bytes = s.replace('+', " ").into_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            let escaped =
                bytes.get(i + 1..i + 3).and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok());
            match (bytes[i], escaped) {
                (b'%', Some(b)) => {
                    out.push(b);
                    i += 3;
                }
                (b, _) => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    body.split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}
