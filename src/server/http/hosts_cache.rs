//! The body of `GET /api/0/hosts`, serialized once and shared by the
//! requests that follow for up to [`MAX_AGE`]; gzip-compressed once, when a
//! client first accepts it; with an `ETag` so that a dashboard polling an
//! unchanged list gets a `304 Not Modified` and no body.
//!
//! At 10,000 hosts the list is 2.5 MB of JSON: asking `core` for every host
//! and serializing them costs tens of milliseconds, far more than sending
//! the bytes. Doing that once a second instead of once per request is what
//! lets the API keep up with a static file server.
//!
//! Invariant: a served list was read from core at most [`MAX_AGE`] before
//! the request arrived, or at most twice that while another request is
//! building its successor (docs/API.md, "Freshness"). Both http threads
//! share one cache; only one builds at a time.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, TryLockError};
use std::time::{Duration, Instant, SystemTime};

use tiny_http::Header;

use crate::server::model::Host;
use crate::server::views::hosts_body;
use crate::wire::unix_seconds;

/// How long one serialized list is served. docs/API.md promises this.
pub const MAX_AGE: Duration = Duration::from_secs(1);

/// One serialized list.
pub struct Body {
    built: Instant,
    /// A weak validator: `uptime` grows with the clock, so two lists that
    /// differ only in it are the same list (`status_since` says when the
    /// host came up). Everything else a host shows is in the fingerprint.
    etag: String,
    json: Arc<[u8]>,
    gzip: OnceLock<Arc<[u8]>>,
}

/// What one request gets: the bytes and the headers that go with them.
pub struct Served {
    pub status: u16,
    pub bytes: Arc<[u8]>,
    pub headers: Vec<Header>,
}

#[derive(Default)]
pub struct HostsCache {
    current: Mutex<Option<Arc<Body>>>,
    /// Held while a body is built, so only one thread builds it.
    building: Mutex<()>,
    /// The front has passed a request on to a worker so that the next list
    /// is built early ([`HostsCache::ready`]); cleared by each new list.
    renewal_asked: AtomicBool,
}

impl HostsCache {
    /// The current list, rebuilt from `ask()` (the hosts, from `core`) when
    /// older than [`MAX_AGE`] (see the module's invariant). An error from `ask` is passed through, and
    /// the next request tries again.
    pub fn body<E>(&self, ask: impl FnOnce() -> Result<Vec<Host>, E>) -> Result<Arc<Body>, E> {
        if let Some(body) = self.younger_than(MAX_AGE) {
            return Ok(body);
        }
        // While another request builds the next list, the current one is
        // served for up to another MAX_AGE rather than making every request
        // wait for the build (tens of ms at 10,000 hosts): only the request
        // that builds waits.
        let _building = match self.building.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => {
                if let Some(body) = self.younger_than(2 * MAX_AGE) {
                    return Ok(body);
                }
                // A poisoned lock only means another request panicked while
                // building; the cache holds no half-made state, so go on.
                self.building.lock().unwrap_or_else(|e| e.into_inner())
            }
        };
        if let Some(body) = self.younger_than(MAX_AGE) {
            return Ok(body);
        }
        self.build(ask)
    }

    /// Builds the next list now if the current one is past half its age
    /// and nobody else is building: called by a worker after it has
    /// answered, so that the requests to come find the list ready rather
    /// than wait for it. An error from `ask` leaves the current list.
    pub fn renew<E>(&self, ask: impl FnOnce() -> Result<Vec<Host>, E>) {
        if self.younger_than(MAX_AGE / 2).is_some() {
            return;
        }
        let Ok(_building) = self.building.try_lock() else { return };
        if self.younger_than(MAX_AGE / 2).is_none() {
            let _ = self.build(ask);
        }
    }

    /// Asks for the hosts and makes them the current list (the caller
    /// holds `building`).
    fn build<E>(&self, ask: impl FnOnce() -> Result<Vec<Host>, E>) -> Result<Arc<Body>, E> {
        let requested = Instant::now();
        let hosts = ask()?;
        let body = Arc::new(Body::build(&hosts, requested));
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(body.clone());
        self.renewal_asked.store(false, Ordering::Relaxed);
        Ok(body)
    }

    /// The current list if a request may have it without anyone asking
    /// core: younger than [`MAX_AGE`], or than twice that while a request
    /// builds its successor (the module's invariant). For the HTTP front,
    /// which answers such requests itself and passes the others on.
    ///
    /// Past half its age, one request is left to a worker, which answers it
    /// from this list and then builds the next ([`HostsCache::renew`]): so
    /// while requests keep coming, none of them waits for a build.
    pub fn ready(&self) -> Option<Arc<Body>> {
        let Some(body) = self.younger_than(MAX_AGE) else {
            return match self.building.try_lock() {
                Err(TryLockError::WouldBlock) => self.younger_than(2 * MAX_AGE),
                _ => None,
            };
        };
        if body.built.elapsed() >= MAX_AGE / 2 && !self.renewal_asked.swap(true, Ordering::Relaxed) {
            return None;
        }
        Some(body)
    }

    /// Drops the current list, so that the next request builds one: after
    /// a write that changes what hosts show (a silence added or ended).
    pub fn clear(&self) {
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    fn younger_than(&self, age: Duration) -> Option<Arc<Body>> {
        let current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        current.as_ref().filter(|b| b.built.elapsed() < age).cloned()
    }
}

impl Body {
    /// `built` is when the hosts were asked for, so that the age counts
    /// from before they were read.
    fn build(hosts: &[Host], built: Instant) -> Body {
        // Serializing plain data into a String cannot fail; an empty list
        // would be the answer if it ever did.
        let json = hosts_body(hosts, unix_seconds(SystemTime::now()))
            .unwrap_or_else(|_| String::from(r#"{"hosts":[],"count":0}"#));
        Body {
            built,
            etag: format!("W/\"{:016x}\"", fingerprint(hosts)),
            json: json.into_bytes().into(),
            gzip: OnceLock::new(),
        }
    }

    /// The answer to a request with these `If-None-Match` and
    /// `Accept-Encoding` values.
    pub fn serve(&self, if_none_match: Option<&str>, accept_encoding: Option<&str>) -> Served {
        let mut headers: Vec<Header> =
            [header("ETag", &self.etag), header("Vary", "Accept-Encoding")].into_iter().flatten().collect();
        if if_none_match.is_some_and(|tags| matches_etag(tags, &self.etag)) {
            return Served { status: 304, bytes: Arc::from(&[][..]), headers };
        }
        if accept_encoding.is_some_and(accepts_gzip) {
            headers.extend(header("Content-Encoding", "gzip"));
            return Served { status: 200, bytes: self.gzip().clone(), headers };
        }
        Served { status: 200, bytes: self.json.clone(), headers }
    }

    /// [`Body::serve`], unless the answer needs the gzip not made yet:
    /// compressing takes milliseconds at thousands of hosts, which the
    /// HTTP front's loop must not spend (it leaves that to a worker).
    pub fn serve_ready(&self, if_none_match: Option<&str>, accept_encoding: Option<&str>) -> Option<Served> {
        let not_modified = if_none_match.is_some_and(|tags| matches_etag(tags, &self.etag));
        let compress = !not_modified && accept_encoding.is_some_and(accepts_gzip) && self.gzip.get().is_none();
        (!compress).then(|| self.serve(if_none_match, accept_encoding))
    }

    fn gzip(&self) -> &Arc<[u8]> {
        self.gzip.get_or_init(|| {
            // The fastest level: the JSON shrinks to about a tenth anyway,
            // and this runs on a request's time.
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::with_capacity(self.json.len() / 8), flate2::Compression::fast());
            // Writing into a Vec cannot fail.
            let zipped = encoder.write_all(&self.json).and_then(|()| encoder.finish()).unwrap_or_default();
            zipped.into()
        })
    }
}

/// Names and values here are fixed ASCII or an ETag of hex digits, always
/// valid; None would only leave the header out.
fn header(name: &str, value: &str) -> Option<Header> {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).ok()
}

/// `If-None-Match`: `*`, or a comma-separated list of tags, compared weakly
/// (RFC 9110, 13.1.2: `W/"x"` matches `"x"`).
fn matches_etag(list: &str, etag: &str) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_string();
    let ours = bare(etag);
    list.split(',').any(|t| t.trim() == "*" || bare(t) == ours)
}

/// `Accept-Encoding` names gzip with a quality above zero.
fn accepts_gzip(list: &str) -> bool {
    list.split(',').any(|item| {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .next()
            .map_or(1.0, |q| q.trim().parse::<f64>().unwrap_or(0.0));
        (coding.eq_ignore_ascii_case("gzip") || coding == "*") && q > 0.0
    })
}

/// Everything of the hosts that `/api/0/hosts` shows, except `uptime`.
fn fingerprint(hosts: &[Host]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    hosts.len().hash(&mut h);
    for host in hosts {
        host.name.hash(&mut h);
        host.address.hash(&mut h);
        host.port.hash(&mut h);
        (host.status as u8).hash(&mut h);
        host.alert_level.hash(&mut h);
        host.count.hash(&mut h);
        for x in [host.interval, host.first_seen, host.last_seen, host.status_since] {
            x.to_bits().hash(&mut h);
        }
        host.latency_ms.map(f64::to_bits).hash(&mut h);
        host.tags.hash(&mut h);
        if let Some(s) = &host.silenced {
            (&s.id, s.until.to_bits(), &s.comment, &s.by).hash(&mut h);
        }
        for (name, series) in &host.plugins {
            name.hash(&mut h);
            (series.kind as u8).hash(&mut h);
        }
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_compare_weakly() {
        assert!(matches_etag("W/\"00ab\"", "W/\"00ab\""));
        assert!(matches_etag("\"00ab\"", "W/\"00ab\""));
        assert!(matches_etag("\"x\", W/\"00ab\"", "W/\"00ab\""));
        assert!(matches_etag("*", "W/\"00ab\""));
        assert!(!matches_etag("W/\"00ac\"", "W/\"00ab\""));
    }

    #[test]
    fn gzip_when_accepted() {
        assert!(accepts_gzip("gzip, deflate, br"));
        assert!(accepts_gzip("br;q=1.0, GZIP;q=0.5"));
        assert!(accepts_gzip("*"));
        assert!(!accepts_gzip("gzip;q=0"));
        assert!(!accepts_gzip("br, deflate"));
    }

    fn age(cache: &HostsCache, by: Duration) {
        let mut current = cache.current.lock().unwrap();
        let body = Arc::get_mut(current.as_mut().unwrap()).unwrap();
        body.built = Instant::now().checked_sub(by).unwrap();
    }

    #[test]
    fn the_front_leaves_one_request_to_a_worker_to_renew_the_list() {
        let cache = HostsCache::default();
        let ask = || -> Result<Vec<Host>, ()> { Ok(Vec::new()) };
        assert!(cache.ready().is_none(), "nothing built yet");
        drop(cache.body(ask));
        assert!(cache.ready().is_some());
        cache.renew(|| -> Result<Vec<Host>, ()> { panic!("a young list is not built again") });
        age(&cache, MAX_AGE * 3 / 4);
        assert!(cache.ready().is_none(), "past half its age, one request goes to a worker");
        assert!(cache.ready().is_some(), "one only: the others are answered by the front");
        let old = cache.younger_than(MAX_AGE).unwrap();
        cache.renew(ask);
        let new = cache.ready().unwrap();
        assert!(!Arc::ptr_eq(&old, &new), "the worker built the next list after answering");
        drop((old, new));
        age(&cache, MAX_AGE * 3 / 2);
        assert!(cache.ready().is_none(), "too old and nobody building: a worker builds it");
        let _building = cache.building.lock().unwrap();
        assert!(cache.ready().is_some(), "served while another request builds");
    }

    #[test]
    fn one_body_per_max_age_and_304_for_its_etag() {
        let cache = HostsCache::default();
        let mut asked = 0;
        let first = cache.body(|| -> Result<_, ()> {
            asked += 1;
            Ok(Vec::new())
        });
        let second = cache.body(|| -> Result<_, ()> {
            asked += 1;
            Ok(Vec::new())
        });
        assert_eq!(asked, 1, "the second request within MAX_AGE shares the first body");
        let body = first.unwrap();
        assert!(Arc::ptr_eq(&body, &second.unwrap()));
        let plain = body.serve(None, None);
        assert_eq!((plain.status, &*plain.bytes), (200, &br#"{"hosts":[],"count":0}"#[..]));
        let etag = plain.headers.iter().find(|h| h.field.equiv("ETag")).unwrap().value.to_string();
        assert_eq!(body.serve(Some(&etag), Some("gzip")).status, 304);
        assert!(body.serve_ready(None, Some("gzip")).is_none(), "the front does not compress");
        assert_eq!(body.serve_ready(Some(&etag), Some("gzip")).unwrap().status, 304);
        let zipped = body.serve(Some("\"other\""), Some("gzip"));
        assert!(body.serve_ready(None, Some("gzip")).is_some(), "compressed once, served by anyone");
        assert!(zipped.headers.iter().any(|h| h.field.equiv("Content-Encoding")));
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&*zipped.bytes), &mut text).unwrap();
        assert_eq!(text.as_bytes(), &*plain.bytes);
    }
}
