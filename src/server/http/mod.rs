//! The http threads: tiny_http serving the REST API, `/metrics` and
//! `/healthz` on `hbd_host:hbd_port`.
//!
//! [`front`] (thread `http-front`) owns the public socket and enforces the
//! limits tiny_http lacks; tiny_http listens on a private Unix socket
//! behind it. [`THREADS`] threads take requests from that one
//! `tiny_http::Server`. Each asks `core` with a [`Query`] through
//! [`msg::ask`] and answers 503 when the core does not answer in time, so
//! a busy core delays requests but nothing here can delay the core.
//! `/api/0/journal` and `/api/0/events` do not ask the core: they read the
//! ends of the journal's files ([`journal::tail`]).
//! Responses are built here: the core's types are not the API's JSON.
//!
//! The workers end when the parent calls `Server::unblock` once per thread;
//! the front when the parent's `stop` channel disconnects.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::SystemTime;

use crossbeam_channel::{Receiver, Sender};
use log::{debug, warn};
use serde_json::{json, Map, Value};
use tiny_http::{Header, Method, Request, Response, Server, StatusCode};

use crate::server::journal::{self, JournalFiles};
use crate::server::model::{AlertKey, ServiceState};
use crate::server::msg::{self, AckRefused, Query, Upgraded};
use crate::server::silence;
use crate::server::views::{alert_json, alerts_json, host_detail_json, latest_json, sample_json, EVENT_TYPES};
use crate::wire::{truncate_chars, unix_seconds};
use auth::{Denied, Tokens};
use host_query::HostQuery;
use hosts_cache::{HostsCache, Served};

mod ack;
pub mod auth;
pub mod badge;
pub mod front;
mod host_query;
pub mod hosts_cache;
pub mod metrics;
pub mod www;

pub const THREADS: usize = 2;
/// The most samples one history request returns.
pub const MAX_LIMIT: usize = 10_000;
/// The lines `/api/0/journal` and `/api/0/events` return without a `limit`.
pub const JOURNAL_LIMIT: usize = 50;
/// The most lines they return.
pub const MAX_JOURNAL_LIMIT: usize = 1000;

#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub bind: SocketAddr,
    /// Origins allowed to read the API from a browser; `*` for any.
    pub cors_origins: Vec<String>,
    /// Replacements for the built-in pages and assets (`templates_dir`).
    pub www_dir: Option<PathBuf>,
    /// The WebSocket port the pages connect to, as bound.
    pub ws_port: u16,
    /// Open connections at most (`http_max_connections`).
    pub max_connections: usize,
    /// The directory of tiny_http's private socket (beside the state file).
    pub private_dir: PathBuf,
    /// The named notification services and whether they are usable (`/healthz`).
    pub notify: Vec<ServiceState>,
    /// The journal's files, whose ends `/api/0/journal` and `/api/0/events`
    /// answer; None with `journal_enabled: false`.
    pub journal: Option<JournalFiles>,
    /// `hbd_name`, for `/healthz`.
    pub name: String,
    /// Who may read and write (`api_tokens_file`, `api_reads_need_token`).
    pub tokens: Tokens,
}

/// The bound sockets: the public one for the front, tiny_http behind.
pub struct Bound {
    pub server: Arc<Server>,
    pub listener: TcpListener,
    backend: PathBuf,
}

/// Binds before the daemon detaches, so a port in use is reported at once.
/// tiny_http's socket lives in a directory only hbd's user may enter, so
/// nobody reaches it around the front's limits.
pub fn bind(settings: &HttpSettings) -> io::Result<Bound> {
    let listener = TcpListener::bind(settings.bind)
        .map_err(|e| io::Error::new(e.kind(), format!("bind http {}: {e}", settings.bind)))?;
    let backend = private_socket(&settings.private_dir)?;
    let unix = UnixListener::bind(&backend)
        .map_err(|e| io::Error::new(e.kind(), format!("bind http backend {}: {e}", backend.display())))?;
    let server = Server::from_listener(unix, None)
        .map_err(|e| io::Error::other(format!("http backend {}: {e}", backend.display())))?;
    Ok(Bound { server: Arc::new(server), listener, backend })
}

fn private_socket(dir: &Path) -> io::Result<PathBuf> {
    let annotate = |e: io::Error| io::Error::new(e.kind(), format!("http backend directory {}: {e}", dir.display()));
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(annotate)?;
        }
        Err(e) => return Err(annotate(e)),
    }
    let path = dir.join("api.sock");
    // Left behind by a hbd that was killed: nobody listens on it any more.
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(annotate(e)),
        _ => {}
    }
    Ok(path)
}

/// Starts the front and the [`THREADS`] workers; the front ends when `stop`
/// disconnects, the workers on `Server::unblock`.
pub fn spawn(
    bound: Bound,
    settings: HttpSettings,
    to_core: Sender<Query>,
    to_ws: Sender<Upgraded>,
    stop: Receiver<()>,
) -> io::Result<Vec<JoinHandle<()>>> {
    let started = SystemTime::now();
    let Bound { server, listener, backend } = bound;
    let hosts = Arc::new(HostsCache::default());
    let front = front::Front {
        listener,
        backend,
        max_connections: settings.max_connections,
        to_ws,
        hosts: hosts.clone(),
        cors_origins: settings.cors_origins.clone(),
        reads_open: !settings.tokens.reads_need_token,
    };
    let settings = Arc::new(settings);
    let mut handles = vec![front::spawn(front, stop)?];
    for i in 0..THREADS {
        let (server, settings, to_core, hosts) = (server.clone(), settings.clone(), to_core.clone(), hosts.clone());
        handles.push(std::thread::Builder::new().name(format!("http{i}")).spawn(move || {
            let api = Api { to_core, started, hosts };
            for request in server.incoming_requests() {
                handle(&api, &settings, request);
            }
        })?);
    }
    Ok(handles)
}

struct Api {
    to_core: Sender<Query>,
    started: SystemTime,
    /// `/api/0/hosts`, shared by both threads.
    hosts: Arc<HostsCache>,
}

/// A response on its way out.
struct Reply {
    status: u16,
    body: String,
    content_type: &'static str,
    cache: &'static str,
    allow: Option<&'static str>,
    location: Option<&'static str>,
    /// A 401: the answer says how to authenticate (`WWW-Authenticate`).
    authenticate: bool,
    /// Pages get a Content-Security-Policy that allows only hbd's own
    /// scripts and styles, so even injected markup could not run script.
    page: bool,
    /// A shared body with its own headers (`/api/0/hosts`), sent instead of `body`.
    shared: Option<Box<Served>>,
    /// An ETag of the body (badges).
    etag: Option<Box<str>>,
}

impl Reply {
    fn new(status: u16, body: String, content_type: &'static str) -> Reply {
        Reply {
            status,
            body,
            content_type,
            cache: "no-store",
            allow: None,
            location: None,
            authenticate: false,
            page: false,
            shared: None,
            etag: None,
        }
    }

    fn json(status: u16, value: &Value) -> Reply {
        Reply::new(status, value.to_string(), "application/json")
    }

    fn error(status: u16, message: impl Into<String>) -> Reply {
        Reply::json(status, &json!({"error": message.into()}))
    }
}

const ALLOWED: &str = "GET, HEAD, OPTIONS";
/// What a known host's path takes: `DELETE` forgets the host.
const HOST_ALLOWED: &str = "GET, HEAD, DELETE, OPTIONS";
/// A host's acknowledgements: `POST` acknowledges, `DELETE` removes.
const ACK_ALLOWED: &str = "POST, DELETE, OPTIONS";
/// `/api/0/silences`: `POST` adds one.
const SILENCES_ALLOWED: &str = "GET, HEAD, POST, OPTIONS";
/// Every method some path takes, for CORS preflights.
const CORS_METHODS: &str = "GET, HEAD, POST, DELETE, OPTIONS";
const PAGE_POLICY: &str =
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn handle(api: &Api, settings: &HttpSettings, mut request: Request) {
    let origin = request.headers().iter().find(|h| h.field.equiv("Origin")).map(|h| h.value.to_string());
    let origin = origin.filter(|o| cors_allows(&settings.cors_origins, o));
    // The front has checked its length (MAX_BODY); a read that fails
    // leaves the body short, which the write's checks refuse.
    let mut body = Vec::new();
    let _ = io::Read::read_to_end(&mut io::Read::take(request.as_reader(), front::MAX_BODY as u64), &mut body);
    let mut reply = route(api, settings, request.method(), request.url(), request.headers(), &body);
    if reply.status == 401 {
        reply.authenticate = true;
    }
    debug!("http: {} {} -> {}", request.method(), request.url(), reply.status);
    let hosts_list = reply.shared.is_some();
    let (data, extra) = match reply.shared.take() {
        Some(served) => {
            let Served { bytes, headers, .. } = *served;
            (Bytes::Shared(bytes), headers)
        }
        None => (Bytes::Owned(std::mem::take(&mut reply.body).into_bytes()), Vec::new()),
    };
    let length = data.as_ref().len();
    // With its length known, the body goes out as it is, not chunked.
    let mut response = Response::new(StatusCode(reply.status), extra, io::Cursor::new(data), Some(length), None)
        .with_chunked_threshold(usize::MAX);
    for (name, value) in reply_headers(&reply, origin.as_deref()) {
        if let Ok(header) = Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            response.add_header(header);
        }
    }
    if let Err(e) = request.respond(response) {
        debug!("http: respond: {e}");
    }
    if hosts_list {
        api.hosts.renew(|| api.ask(Query::Hosts));
    }
}

/// The headers an answer carries for what it is, `origin` being an
/// `Origin` that `cors_origins` allows (tiny_http adds `Date`, `Server`
/// and `Content-Length`).
fn reply_headers<'a>(reply: &'a Reply, origin: Option<&'a str>) -> Vec<(&'static str, &'a str)> {
    let mut headers = vec![
        ("Content-Type", reply.content_type),
        ("Cache-Control", reply.cache),
        ("X-Content-Type-Options", "nosniff"),
    ];
    headers.extend(reply.allow.map(|allow| ("Allow", allow)));
    headers.extend(reply.location.map(|location| ("Location", location)));
    headers.extend(reply.etag.as_deref().map(|etag| ("ETag", etag)));
    if reply.authenticate {
        headers.push(("WWW-Authenticate", "Bearer realm=\"hbd\""));
    }
    if reply.page {
        headers.extend([("Content-Security-Policy", PAGE_POLICY), ("Referrer-Policy", "no-referrer")]);
    }
    if let Some(origin) = origin {
        headers.extend([
            ("Access-Control-Allow-Origin", origin),
            ("Access-Control-Allow-Methods", CORS_METHODS),
            ("Access-Control-Allow-Headers", "Content-Type, Authorization"),
            ("Vary", "Origin"),
        ]);
    }
    headers
}

/// What `/api/0/hosts` answers, but its shared body.
fn hosts_reply(status: u16) -> Reply {
    Reply { cache: "no-cache", ..Reply::new(status, String::new(), "application/json") }
}

/// The head of an answer to `/api/0/hosts` written by the HTTP front
/// (`extra`: the list's own headers, ETag and the like): the fields a
/// worker would send, from the same functions.
fn hosts_answer_head<'a>(
    status: u16,
    length: usize,
    extra: impl Iterator<Item = (&'a str, &'a str)>,
    origin: Option<&str>,
) -> Vec<u8> {
    let reply = hosts_reply(status);
    let phrase = if status == 304 { "Not Modified" } else { "OK" };
    let mut head = format!("HTTP/1.1 {status} {phrase}\r\nDate: {}\r\n", http_date(SystemTime::now()));
    for (name, value) in extra {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    for (name, value) in reply_headers(&reply, origin) {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if status != 304 {
        head.push_str(&format!("Content-Length: {length}\r\n"));
    }
    head.push_str("Connection: close\r\n\r\n");
    head.into_bytes()
}

/// An HTTP date (RFC 9110, 5.6.7): `Sun, 06 Nov 1994 08:49:37 GMT`.
fn http_date(at: SystemTime) -> String {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let seconds = at.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, time) = (seconds / 86400, seconds % 86400);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    // Days to a civil date (H. Hinnant's algorithm), in eras of 400 years.
    let shifted = days + 719_468;
    let (era, day_of_era) = (shifted / 146_097, shifted % 146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 { month_from_march + 2 } else { month_from_march - 10 };
    let year = era * 400 + year_of_era + u64::from(month < 2);
    format!(
        "{weekday}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        MONTHS[month as usize],
        time / 3600,
        time % 3600 / 60,
        time % 60
    )
}

/// A response body: built for this request, or shared between requests.
enum Bytes {
    Owned(Vec<u8>),
    Shared(Arc<[u8]>),
}

impl AsRef<[u8]> for Bytes {
    fn as_ref(&self) -> &[u8] {
        match self {
            Bytes::Owned(v) => v,
            Bytes::Shared(b) => b,
        }
    }
}

fn cors_allows(allowed: &[String], origin: &str) -> bool {
    allowed.iter().any(|a| a == "*" || a == origin)
}

/// Whether `origin` (`http://host:port`) is hbd's own, as the request's
/// `Host` names it: a page hbd served.
fn same_origin(origin: &str, host: Option<&str>) -> bool {
    let origin_host = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
    origin_host.is_some_and(|o| host.is_some_and(|h| h.eq_ignore_ascii_case(o)))
}

/// Everything hbd answers at; any other path is a 404.
enum Target<'a> {
    Page(&'static www::File),
    Asset(&'static www::File),
    Healthz,
    Metrics,
    Hosts,
    Host(&'a str),
    Plugins(&'a str),
    History(&'a str, &'a str),
    Alerts(Option<&'a str>),
    Ack(&'a str),
    Journal,
    Events,
    /// `/badge/NAME.svg`
    Badge(&'a str),
    /// `/badge/tag/TAG.svg`
    TagBadge(&'a str),
    Silences,
    Silence(&'a str),
}

fn target<'a>(segments: &[&'a str]) -> Option<Target<'a>> {
    Some(match *segments {
        // The overview is the landing page; /live keeps its old name.
        [""] => Target::Page(www::page("live")?),
        ["hosts", _] => Target::Page(www::page("host")?),
        ["static", name] => Target::Asset(www::asset(name)?),
        ["healthz"] => Target::Healthz,
        ["metrics"] => Target::Metrics,
        ["api", "0", "hosts"] => Target::Hosts,
        ["api", "0", "hosts", name] => Target::Host(name),
        ["api", "0", "hosts", name, "plugins"] => Target::Plugins(name),
        ["api", "0", "hosts", name, "plugins", plugin] => Target::History(name, plugin),
        ["api", "0", "hosts", name, "alerts"] => Target::Alerts(Some(name)),
        ["api", "0", "hosts", name, "ack"] => Target::Ack(name),
        ["api", "0", "alerts"] => Target::Alerts(None),
        ["api", "0", "journal"] => Target::Journal,
        ["api", "0", "events"] => Target::Events,
        ["badge", "tag", file] => Target::TagBadge(file.strip_suffix(".svg")?),
        ["badge", file] => Target::Badge(file.strip_suffix(".svg")?),
        ["api", "0", "silences"] => Target::Silences,
        ["api", "0", "silences", id] => Target::Silence(id),
        // host.html is a host's page only: /hosts/NAME.
        [name] if name != "host" => Target::Page(www::page(name)?),
        _ => return None,
    })
}

fn route(api: &Api, settings: &HttpSettings, method: &Method, url: &str, headers: &[Header], body: &[u8]) -> Reply {
    let path = url.split_once('?').map_or(url, |(path, _)| path);
    let Some((segments, query)) = split_target(url) else {
        return Reply::error(400, "malformed percent-encoding in the path");
    };
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let Some(target) = target(&segments) else {
        return Reply::error(404, format!("no such path: {}", truncate(path)));
    };
    let allowed = match target {
        Target::Host(_) | Target::Silence(_) => HOST_ALLOWED,
        Target::Ack(_) => ACK_ALLOWED,
        Target::Silences => SILENCES_ALLOWED,
        _ => ALLOWED,
    };
    let write = match method {
        Method::Get | Method::Head => false,
        Method::Options => return Reply { allow: Some(allowed), ..Reply::new(204, String::new(), "text/plain") },
        other if allowed.split(", ").any(|m| m == other.as_str()) => true,
        other => {
            return Reply {
                allow: Some(allowed),
                ..Reply::error(405, format!("method {other} not allowed; use {allowed}"))
            }
        }
    };
    let header = |name: &'static str| headers.iter().find(|h| h.field.equiv(name)).map(|h| h.value.as_str());
    // Pages, their assets and /healthz stay open: a browser loads them
    // before it can send any token, and a health check has none.
    let open = matches!(target, Target::Page(_) | Target::Asset(_) | Target::Healthz);
    let by = match settings.tokens.allow(header("Authorization"), write) {
        _ if open && !write => None,
        Ok(name) => name,
        Err(Denied::Unauthorized(why)) => return Reply::error(401, why),
        Err(Denied::Forbidden(why)) => return Reply::error(403, why),
    };
    if write {
        if let Some(origin) =
            header("Origin").filter(|o| !same_origin(o, header("Host")) && !cors_allows(&settings.cors_origins, o))
        {
            return Reply::error(403, format!("a write from another site ({}) is refused", truncate(origin)));
        }
        // Only an admin token's holder gets here.
        let by = by.unwrap_or_default();
        return match target {
            Target::Host(name) => match query_flag(query, "dns") {
                Ok(dns) => api.forget(name, by, dns),
                Err(reply) => reply,
            },
            Target::Ack(name) => {
                match std::str::from_utf8(body).map_err(|_| "the request body is not UTF-8".to_string()) {
                    Ok(body) => match ack::parse(*method == Method::Post, body, query) {
                        Ok(ack) => api.ack(name, by, ack),
                        Err(why) => Reply::error(400, why),
                    },
                    Err(why) => Reply::error(400, why),
                }
            }
            Target::Silences => api.add_silence(body, by),
            Target::Silence(id) => api.end_silence(id, by),
            _ => Reply::error(405, "no writes here"),
        };
    }
    match target {
        Target::Page(file) => {
            let html = www::content(file, settings.www_dir.as_deref(), false)
                .replace("{{ws_port}}", &settings.ws_port.to_string());
            Reply { page: true, cache: "no-cache", ..Reply::new(200, html, file.content_type) }
        }
        Target::Asset(file) => Reply {
            cache: "public, max-age=3600",
            ..Reply::new(200, www::content(file, settings.www_dir.as_deref(), true), file.content_type)
        },
        Target::Healthz => api.healthz(&settings.name, &settings.notify),
        Target::Metrics => {
            let mut plugin_data = true;
            for (key, value) in query_pairs(query) {
                match (key, value) {
                    ("plugins", "none") => plugin_data = false,
                    ("plugins", "all") => plugin_data = true,
                    ("plugins", _) => return Reply::error(400, "plugins= is `none` or `all`"),
                    (key, _) => {
                        return Reply::error(400, format!("/metrics takes no parameter {key:?}, only plugins="))
                    }
                }
            }
            api.metrics(plugin_data)
        }
        Target::Hosts => {
            let decoded: Option<Vec<(&str, String)>> =
                query_pairs(query).map(|(key, value)| Some((key, percent_decode(value)?))).collect();
            let Some(pairs) = decoded else { return Reply::error(400, "the query has a malformed %-escape") };
            match HostQuery::parse(pairs.into_iter()) {
                Ok(Some(asked)) => api.queried_hosts(&asked),
                Ok(None) => api.hosts(header("If-None-Match"), header("Accept-Encoding")),
                Err(why) => Reply::error(400, why),
            }
        }
        Target::Host(name) => api.host(name),
        Target::Plugins(name) => api.plugins(name),
        Target::History(name, plugin) => match parse_limit(query) {
            Ok(limit) => api.history(name, plugin, limit),
            Err(reply) => reply,
        },
        Target::Alerts(host) => api.alerts(host),
        Target::Ack(_) => Reply {
            allow: Some(ACK_ALLOWED),
            ..Reply::error(405, format!("method {method} not allowed; use {ACK_ALLOWED}"))
        },
        Target::Journal => journal_tail(settings.journal.as_ref(), query, false),
        Target::Events => journal_tail(settings.journal.as_ref(), query, true),
        Target::Badge(name) => api.badge(name, false, header("If-None-Match")),
        Target::TagBadge(tag) => api.badge(tag, true, header("If-None-Match")),
        Target::Silences => api.silences(None),
        Target::Silence(id) => api.silences(Some(id)),
    }
}

/// A request target's decoded path segments and its query; None when the
/// percent-encoding is malformed. Public for the fuzz target `http_request`.
pub fn split_target(url: &str) -> Option<(Vec<String>, &str)> {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let segments = path.split('/').skip(1).map(percent_decode).collect::<Option<Vec<_>>>()?;
    Some((segments, query))
}

/// The `limit` of a history request, or None when it is not one hbd takes
/// (a 400). Public for the fuzz target `http_request`.
pub fn history_limit(query: &str) -> Option<usize> {
    parse_limit(query).ok()
}

fn parse_limit(query: &str) -> Result<usize, Reply> {
    limit_in(query, MAX_LIMIT, MAX_LIMIT)
}

/// The query's `key=value` pairs, as sent (not decoded).
fn query_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| pair.split_once('=').unwrap_or((pair, "")))
}

/// The query's `limit`, `default` without one; a 400 unless from 1 to `max`.
fn limit_in(query: &str, default: usize, max: usize) -> Result<usize, Reply> {
    let mut limit = default;
    for (key, value) in query_pairs(query) {
        if key == "limit" {
            let value = percent_decode(value).unwrap_or_else(|| value.to_string());
            let value = value.as_str();
            limit = value.parse::<usize>().ok().filter(|n| (1..=max).contains(n)).ok_or_else(|| {
                Reply::error(400, format!("limit must be an integer from 1 to {max}, not {:?}", truncate(value)))
            })?;
        }
    }
    Ok(limit)
}

/// A yes/no query parameter (`dns=1`, `dns=true`, `dns=no`); absent: no.
fn query_flag(query: &str, name: &str) -> Result<bool, Reply> {
    let mut flag = false;
    for (key, value) in query_pairs(query).filter(|(key, _)| *key == name) {
        flag = match value {
            "" | "1" | "true" | "yes" => true,
            "0" | "false" | "no" => false,
            other => return Err(Reply::error(400, format!("{key} must be 1 or 0, not {:?}", truncate(other)))),
        };
    }
    Ok(flag)
}

/// `/healthz`'s `notify`: each named service, usable or not and why.
fn notify_json(states: &[ServiceState]) -> Value {
    let services: Map<String, Value> = states
        .iter()
        .map(|s| (s.name.to_string(), json!({"usable": s.problem.is_none(), "problem": s.problem})))
        .collect();
    Value::Object(services)
}

/// The event types a query asks for (`type=alert`, `type=alert,alert_reminder`,
/// or `type` repeated); empty for every type. An unknown type is a 400.
fn event_types(query: &str) -> Result<Vec<&'static str>, Reply> {
    let mut types = Vec::new();
    for value in query_pairs(query).filter_map(|(key, value)| (key == "type").then_some(value)) {
        let value = percent_decode(value).unwrap_or_default();
        for name in value.split(',') {
            match EVENT_TYPES.iter().find(|t| **t == name) {
                Some(known) => types.push(*known),
                None => {
                    return Err(Reply::error(
                        400,
                        format!("unknown event type {:?}; the types are {}", truncate(name), EVENT_TYPES.join(", ")),
                    ))
                }
            }
        }
    }
    Ok(types)
}

/// `/api/0/journal` (`events` false: received messages) and
/// `/api/0/events`: the last lines of the journal's files, read here in
/// the http thread, from the files' ends ([`journal::tail`]). The core has
/// no part in it. Lines the journal still buffers (up to a second) are not
/// in the files yet.
fn journal_tail(files: Option<&JournalFiles>, query: &str, events: bool) -> Reply {
    let limit = match limit_in(query, JOURNAL_LIMIT, MAX_JOURNAL_LIMIT) {
        Ok(limit) => limit,
        Err(reply) => return reply,
    };
    let types = if events {
        match event_types(query) {
            Ok(types) => types,
            Err(reply) => return reply,
        }
    } else {
        Vec::new()
    };
    let key = if events { "events" } else { "messages" };
    let answer = |lines: Vec<Value>, enabled: bool| {
        Reply::json(200, &json!({"journal_enabled": enabled, "count": lines.len(), key: lines}))
    };
    let Some(files) = files else {
        return answer(Vec::new(), false);
    };
    let read = if events {
        // Each line names its type as the journal writes it, `"type":"alert",`:
        // a line without any asked-for type is not parsed at all.
        let needles: Vec<Vec<u8>> = types.iter().map(|t| format!("\"type\":\"{t}\"").into_bytes()).collect();
        journal::tail(&files.events, limit, |line| {
            if !needles.is_empty() && !needles.iter().any(|n| line.windows(n.len()).any(|w| w == n.as_slice())) {
                return None;
            }
            let value: Value = serde_json::from_slice(line).ok()?;
            let kind = value.get("type")?.as_str()?;
            (types.is_empty() || types.contains(&kind)).then_some(value)
        })
    } else {
        journal::tail(&files.messages, limit, |line| {
            let value: Value = serde_json::from_slice(line).ok()?;
            // A received message; an event line of an older hbd, which wrote
            // both into this file, is not one.
            (value.get("message").is_some_and(Value::is_object) && value.get("type").is_none()).then_some(value)
        })
    };
    match read {
        Ok(lines) => answer(lines, true),
        Err(e) => {
            warn!("http: {key} of the journal: {e}");
            Reply::error(500, format!("cannot read the journal: {}", e.kind()))
        }
    }
}

impl Api {
    /// Asks the core; a core that does not answer is a 503.
    fn ask<T>(&self, query: impl FnOnce(Sender<T>) -> Query) -> Result<T, Reply> {
        msg::ask(&self.to_core, query).map_err(|e| Reply::error(503, e.to_string()))
    }

    fn healthz(&self, name: &str, notify: &[ServiceState]) -> Reply {
        let uptime = SystemTime::now().duration_since(self.started).map(|d| d.as_secs()).unwrap_or(0);
        match self.ask(Query::HostCount) {
            Ok(hosts) => Reply::json(
                200,
                &json!({"status": "ok", "name": name, "hosts": hosts, "uptime_s": uptime, "version": env!("CARGO_PKG_VERSION"), "notify": notify_json(notify)}),
            ),
            Err(reply) => reply,
        }
    }

    fn metrics(&self, plugin_data: bool) -> Reply {
        let snapshot = match self.ask(|reply| Query::Metrics { plugin_data, reply }) {
            Ok(snapshot) => snapshot,
            Err(reply) => return reply,
        };
        // Headroom for the head and the rest of the answer.
        match metrics::render(&snapshot, front::MAX_ANSWER - (1 << 20)) {
            Ok(text) => Reply::new(200, text, "text/plain; version=0.0.4; charset=utf-8"),
            Err(bytes) => Reply::error(
                503,
                format!(
                    "/metrics would be over {} MiB (the most hbd serves) with every host's plugin data; \
                     ask /metrics?plugins=none",
                    bytes >> 20
                ),
            ),
        }
    }

    /// From the shared cache ([`hosts_cache`]): at most a second old.
    fn hosts(&self, if_none_match: Option<&str>, accept_encoding: Option<&str>) -> Reply {
        match self.hosts.body(|| self.ask(Query::Hosts)) {
            Ok(body) => {
                let served = body.serve(if_none_match, accept_encoding);
                let status = served.status;
                Reply { shared: Some(Box::new(served)), ..hosts_reply(status) }
            }
            Err(reply) => reply,
        }
    }

    /// `/api/0/hosts` with filters, fields or a page ([`host_query`]),
    /// built for the request (the shared, unfiltered body stays as it is).
    fn queried_hosts(&self, asked: &HostQuery) -> Reply {
        let filter = asked.filter.clone();
        match self
            .ask(|reply| Query::HostPage { filter, reply })
            .map(|page| asked.answer(&page, unix_seconds(SystemTime::now())))
        {
            Ok(Ok(answer)) => Reply::json(200, &answer),
            Ok(Err(why)) => Reply::error(400, why),
            Err(reply) => reply,
        }
    }

    /// A badge ([`badge`]): of a host (or job), or with `of_tag` of a tag.
    /// A matching `If-None-Match` is a 304 without a body.
    fn badge(&self, name: &str, of_tag: bool, if_none_match: Option<&str>) -> Reply {
        let made = if of_tag {
            self.ask(Query::Hosts).map(|hosts| badge::tag(name, &hosts))
        } else {
            self.ask(|reply| Query::Host { name: name.to_string(), reply }).map(|host| badge::host(name, host.as_ref()))
        };
        let made = match made {
            Ok(made) => made,
            Err(reply) => return reply,
        };
        let fresh = if_none_match.is_some_and(|tags| tags.split(',').any(|t| t.trim() == made.etag || t.trim() == "*"));
        let (status, body) = if fresh && made.status == 200 { (304, String::new()) } else { (made.status, made.svg) };
        Reply {
            cache: badge::CACHE,
            etag: Some(made.etag.into_boxed_str()),
            ..Reply::new(status, body, "image/svg+xml")
        }
    }

    /// `DELETE /api/0/hosts/NAME[?dns=1]`: forget the host (and its DNS
    /// records), `by` the token's holder.
    fn forget(&self, name: &str, by: &str, dns: bool) -> Reply {
        match self.ask(|reply| Query::Forget { name: name.to_string(), by: by.to_string(), dns, reply }) {
            Ok(true) => {
                Reply::json(200, &json!({"forgotten": name.to_ascii_lowercase(), "by": by, "dns_removed": dns}))
            }
            Ok(false) => unknown_host(name),
            Err(reply) => reply,
        }
    }

    fn host(&self, name: &str) -> Reply {
        match self.ask(|reply| Query::Host { name: name.to_string(), reply }) {
            Ok(Some(host)) => Reply::json(200, &host_detail_json(&host, unix_seconds(SystemTime::now()))),
            Ok(None) => unknown_host(name),
            Err(reply) => reply,
        }
    }

    fn plugins(&self, name: &str) -> Reply {
        match self.ask(|reply| Query::Host { name: name.to_string(), reply }) {
            Ok(Some(host)) => {
                let plugins: Map<String, Value> = host
                    .plugins
                    .iter()
                    .filter_map(|(plugin, series)| Some((plugin.clone(), latest_json(series)?)))
                    .collect();
                Reply::json(200, &json!({"name": host.name, "plugins": plugins}))
            }
            Ok(None) => unknown_host(name),
            Err(reply) => reply,
        }
    }

    fn history(&self, name: &str, plugin: &str, limit: usize) -> Reply {
        let query = |reply| Query::History { name: name.to_string(), plugin: plugin.to_string(), limit, reply };
        match self.ask(query) {
            Ok(Some(Some(series))) => {
                let samples: Vec<Value> = series.samples.iter().map(sample_json).collect();
                Reply::json(
                    200,
                    &json!({"name": name.to_ascii_lowercase(), "plugin": plugin, "kind": series.kind, "count": samples.len(), "samples": samples}),
                )
            }
            Ok(Some(None)) => Reply::error(404, format!("host {} has no plugin {}", truncate(name), truncate(plugin))),
            Ok(None) => unknown_host(name),
            Err(reply) => reply,
        }
    }

    fn alerts(&self, host: Option<&str>) -> Reply {
        match self.ask(|reply| Query::Alerts { host: host.map(str::to_string), reply }) {
            Ok(Some(list)) => {
                let mut body = alerts_json(&list);
                if let (Some(name), Some(map)) = (host, body.as_object_mut()) {
                    map.insert("hostname".into(), json!(name.to_ascii_lowercase()));
                }
                Reply::json(200, &body)
            }
            Ok(None) => unknown_host(host.unwrap_or_default()),
            Err(reply) => reply,
        }
    }
}

impl Api {
    /// `POST`/`DELETE /api/0/hosts/NAME/ack`: the alert as it is now, or
    /// 404 (unknown host or alert), 409 (OK, or not acknowledged).
    fn ack(&self, name: &str, by: &str, ack: ack::AckRequest) -> Reply {
        let key = AlertKey::new(name, &ack.plugin, &ack.metric_path);
        let what = format!("{}/{}/{}", truncate(name), truncate(&key.plugin), truncate(&key.metric_path));
        let query = |reply| Query::Ack { key, by: by.to_string(), comment: ack.comment, reply };
        match self.ask(query) {
            Ok(Ok(alert)) => Reply::json(200, &alert_json(&alert)),
            Ok(Err(AckRefused::UnknownHost)) => unknown_host(name),
            Ok(Err(AckRefused::UnknownAlert)) => Reply::error(404, format!("no alert {what}")),
            Ok(Err(AckRefused::IsOk)) => Reply::error(409, format!("alert {what} is OK: nothing to acknowledge")),
            Ok(Err(AckRefused::NotAcknowledged)) => Reply::error(409, format!("alert {what} is not acknowledged")),
            Err(reply) => reply,
        }
    }
}

/// Silences (docs/API.md, "Silences"): the body is checked here
/// (`silence::parse_new`), core keeps them.
impl Api {
    fn add_silence(&self, body: &[u8], by: &str) -> Reply {
        let now = unix_seconds(SystemTime::now());
        let new = match silence::parse_new(body, by, now) {
            Ok(new) => new,
            Err(why) => return Reply::error(400, why),
        };
        match self.ask(|reply| Query::AddSilence { silence: new, reply }) {
            Ok(None) => Reply::error(
                409,
                format!("hbd keeps at most {} silences: end some first (GET /api/0/silences)", msg::MAX_SILENCES),
            ),
            Ok(Some(added)) => {
                // The next /api/0/hosts shows it at once.
                self.hosts.clear();
                Reply::json(201, &silence::silence_json(&added, Some(now)))
            }
            Err(reply) => reply,
        }
    }

    fn end_silence(&self, id: &str, by: &str) -> Reply {
        match self.ask(|reply| Query::EndSilence { id: id.to_string(), by: by.to_string(), reply }) {
            Ok(Some(ended)) => {
                self.hosts.clear();
                // Ended now, whatever its times said.
                let mut shown = silence::silence_json(&ended, None);
                shown["active"] = json!(false);
                Reply::json(200, &shown)
            }
            Ok(None) => unknown_silence(id),
            Err(reply) => reply,
        }
    }

    /// The list, or with an id the one silence.
    fn silences(&self, id: Option<&str>) -> Reply {
        let now = unix_seconds(SystemTime::now());
        match (self.ask(Query::Silences), id) {
            (Ok(list), None) => Reply::json(200, &list.json(now)),
            (Ok(list), Some(id)) => match list.silences.iter().find(|s| s.id == id) {
                Some(found) => Reply::json(200, &silence::silence_json(found, Some(now))),
                None => unknown_silence(id),
            },
            (Err(reply), _) => reply,
        }
    }
}

fn unknown_silence(id: &str) -> Reply {
    Reply::error(404, format!("no silence {} (ended, or never added)", truncate(id)))
}

fn unknown_host(name: &str) -> Reply {
    Reply::error(404, format!("unknown host {}", truncate(name)))
}

/// Decodes `%XX`; None when an escape is malformed or the result is not UTF-8.
fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Bounds what a request can put into a response or log line.
fn truncate(s: &str) -> &str {
    truncate_chars(s, 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_are_rfc_9110_imf_fixdate() {
        let at = |seconds: u64| http_date(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(seconds));
        assert_eq!(at(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(at(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT", "RFC 9110's own example");
        assert_eq!(at(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(at(1_796_009_027), "Mon, 30 Nov 2026 03:23:47 GMT");
        assert_eq!(at(4_107_542_399), "Sun, 28 Feb 2100 23:59:59 GMT", "2100 is not a leap year");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%2Fb%20c").as_deref(), Some("a/b c"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("%ff"), None, "not UTF-8");
    }

    #[test]
    fn limits() {
        assert_eq!(parse_limit("").ok(), Some(MAX_LIMIT));
        assert_eq!(parse_limit("limit=5&x=1").ok(), Some(5));
        for bad in ["limit=0", "limit=-1", "limit=abc", "limit=", "limit=10001"] {
            assert_eq!(parse_limit(bad).err().map(|r| r.status), Some(400), "{bad}");
        }
    }

    #[test]
    fn journal_limits_and_event_types() {
        let limit = |q| limit_in(q, JOURNAL_LIMIT, MAX_JOURNAL_LIMIT).map_err(|r| r.status);
        assert_eq!(limit(""), Ok(50));
        assert_eq!(limit("type=alert&limit=1000"), Ok(1000));
        for bad in ["limit=0", "limit=1001", "limit=1e3", "limit=", "limit"] {
            assert_eq!(limit(bad), Err(400), "{bad}");
        }
        let types = |q| event_types(q).map_err(|r| r.status);
        assert_eq!(types("limit=5"), Ok(vec![]));
        assert_eq!(types("type=alert"), Ok(vec!["alert"]));
        assert_eq!(types("type=alert,alert_reminder"), Ok(vec!["alert", "alert_reminder"]));
        assert_eq!(types("type=host_up&type=host_down%2Cdns_update"), Ok(vec!["host_up", "host_down", "dns_update"]));
        for bad in ["type=", "type=alert,", "type=Alert", "type=message", "type=%zz"] {
            assert_eq!(types(bad), Err(400), "{bad}");
        }
    }

    #[test]
    fn journal_answers_without_a_journal() {
        for (events, key) in [(false, "messages"), (true, "events")] {
            let reply = journal_tail(None, "limit=3", events);
            let body: Value = serde_json::from_str(&reply.body).unwrap();
            assert_eq!((reply.status, body), (200, json!({"journal_enabled": false, "count": 0, key: []})));
        }
    }

    #[test]
    fn cors() {
        assert!(!cors_allows(&[], "https://a.example"));
        assert!(cors_allows(&["*".into()], "https://a.example"));
        assert!(cors_allows(&["https://a.example".into()], "https://a.example"));
        assert!(!cors_allows(&["https://a.example".into()], "https://b.example"));
    }
}
