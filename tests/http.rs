//! The HTTP API of the real `hbd`: every endpoint and error, CORS, and
//! `/metrics` checked by Prometheus' own `promtool`.

mod support;

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use support::*;

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

/// A heartbeat with plugin data, sent until acknowledged.
fn send_plugins(hbd: &Hbd, name: &str, seq: u64, plugins: Value) {
    let client = client("127.0.0.1:0");
    let message = json!({"ID": "HTB", "name": name, "interval": 30, "seq": seq, "latency_ms": 1.5, "plugins": plugins});
    wait_for("ACK", || send_recv(&client, hbd.addr, message.to_string().as_bytes()));
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

#[test]
fn rest_api_hosts_plugins_history_and_errors() {
    let dir = TempDir::new("api");
    let hbd = Hbd::start(&dir, "plugin_history: 5\n");
    for seq in 1..=3 {
        send_plugins(
            &hbd,
            "web1",
            seq,
            json!({
                "cpu_monitor": {"kind": "monitor", "at": now(), "data": {"cpu_percent": 10.0 * seq as f64, "load_1min": 0.5}},
                "os_info": {"kind": "info", "at": now(), "data": {"os": "linux", "note": "<script>alert(1)</script>", "key \"quoted\"": "ü"}},
            }),
        );
    }
    heartbeat(&client("127.0.0.1:0"), hbd.addr, "db1", 60.0, 1);
    hbd.wait_journal("db1's heartbeat", |v| v["message"]["name"] == "db1");

    let (status, hosts) = get_json(hbd.http, "/api/0/hosts");
    assert_eq!(status, 200);
    assert_eq!(hosts["count"], 2);
    let names: Vec<&str> = hosts["hosts"].as_array().unwrap().iter().map(|h| h["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["db1", "web1"]);
    let web1 = &hosts["hosts"][1];
    assert_eq!(web1["status"], "up");
    assert_eq!(web1["address"], "127.0.0.1");
    assert_eq!(web1["interval"], 30.0);
    assert_eq!(web1["count"], 3);
    assert_eq!(web1["latency_ms"], 1.5);
    assert!(web1["first_seen"].as_f64() <= web1["last_seen"].as_f64());
    assert!(web1["uptime"].as_f64().unwrap() >= 0.0);
    assert_eq!(web1["plugins"], json!({"cpu_monitor": "monitor", "os_info": "info"}));
    assert_eq!(hosts["hosts"][0]["latency_ms"], Value::Null);

    let (status, one) = get_json(hbd.http, "/api/0/hosts/WEB1");
    assert_eq!((status, one["name"].as_str()), (200, Some("web1")), "names are case-insensitive");

    let (status, plugins) = get_json(hbd.http, "/api/0/hosts/web1/plugins");
    assert_eq!(status, 200);
    assert_eq!(plugins["plugins"]["cpu_monitor"]["data"]["cpu_percent"], 30.0, "latest sample");
    assert_eq!(plugins["plugins"]["cpu_monitor"]["kind"], "monitor");
    let os = &plugins["plugins"]["os_info"]["data"];
    assert_eq!(os["note"], "<script>alert(1)</script>", "plugin strings come back verbatim, as JSON");
    assert_eq!(os["key \"quoted\""], "ü");

    let (status, history) = get_json(hbd.http, "/api/0/hosts/web1/plugins/cpu_monitor?limit=2");
    assert_eq!(status, 200);
    assert_eq!(history["count"], 2);
    let values: Vec<f64> =
        history["samples"].as_array().unwrap().iter().map(|s| s["data"]["cpu_percent"].as_f64().unwrap()).collect();
    assert_eq!(values, [20.0, 30.0], "newest last");
    let (_, all) = get_json(hbd.http, "/api/0/hosts/web1/plugins/cpu_monitor");
    assert_eq!(all["count"], 3);

    for (path, status, message) in [
        ("/api/0/hosts/nope", 404, "unknown host nope"),
        ("/api/0/hosts/nope/plugins", 404, "unknown host nope"),
        ("/api/0/hosts/web1/plugins/nope", 404, "host web1 has no plugin nope"),
        ("/api/0/hosts/web1/plugins/cpu_monitor?limit=0", 400, "limit must be an integer from 1 to 10000"),
        ("/api/0/hosts/web1/plugins/cpu_monitor?limit=abc", 400, "limit must be"),
        ("/api/0/nothing", 404, "no such path"),
        ("/static/../../etc/passwd", 404, "no such path"),
        ("/api/0/hosts/%zz", 400, "malformed percent-encoding"),
    ] {
        let (got, body) = get_json(hbd.http, path);
        assert_eq!(got, status, "{path}");
        assert!(body["error"].as_str().unwrap().starts_with(message), "{path}: {body}");
    }
    let (status, headers, body) = http_request(hbd.http, "POST", "/api/0/hosts", &[("Content-Length", "0")]);
    assert_eq!(status, 405);
    assert_eq!(header(&headers, "allow"), Some("GET, HEAD, OPTIONS"));
    assert!(body.contains("\"error\""));

    let (status, health) = get_json(hbd.http, "/healthz");
    assert_eq!((status, health["status"].as_str(), health["hosts"].as_u64()), (200, Some("ok"), Some(2)));
}

/// `/api/0/hosts` is answered by a worker (which builds the list) or, while
/// the list is fresh, by the HTTP front from the same bytes: a client sees
/// the same answer either way, gzip, `304`, `HEAD` and CORS included.
#[test]
fn the_hosts_list_is_the_same_answer_from_the_front_and_from_a_worker() {
    let dir = TempDir::new("hosts-list");
    let hbd = Hbd::start(&dir, "cors_origins: [\"https://dash.example\"]\n");
    for (seq, name) in ["a1", "b2", "c3"].iter().enumerate() {
        heartbeat(&client("127.0.0.1:0"), hbd.addr, name, 60.0, seq as u64 + 1);
    }
    wait_for("three hosts", || (get_json(hbd.http, "/api/0/hosts").1["count"] == 3).then_some(()));
    // tiny_http names itself; the front does not.
    let by_worker = |headers: &[(String, String)]| header(headers, "server").is_some();
    let ask = |method: &str, headers: &[(&str, &str)], from_worker: bool| {
        wait_for("an answer from the wanted side", || {
            let answer = http_request(hbd.http, method, "/api/0/hosts", headers);
            (by_worker(&answer.1) == from_worker).then_some(answer)
        })
    };
    let comparable = |headers: &[(String, String)]| {
        let mut kept: Vec<(String, String)> = headers
            .iter()
            // (Two lists may differ in length: `uptime` grows.)
            .filter(|(k, _)| !["server", "date", "connection", "content-length"].contains(&k.as_str()))
            .cloned()
            .collect();
        kept.sort();
        kept
    };
    let cors = [("Origin", "https://dash.example")];
    for (method, extra) in [("GET", &[][..]), ("HEAD", &[][..]), ("GET", &[("Accept-Encoding", "gzip")][..])] {
        let headers: Vec<(&str, &str)> = extra.iter().chain(&cors).copied().collect();
        let front = ask(method, &headers, false);
        let worker = ask(method, &headers, true);
        assert_eq!(front.0, 200, "{method} {extra:?}");
        assert_eq!(comparable(&front.1), comparable(&worker.1), "{method} {extra:?}: same fields");
        assert_eq!(header(&front.1, "access-control-allow-origin"), Some("https://dash.example"));
        assert!(header(&front.1, "date").is_some_and(|d| d.ends_with(" GMT")), "{:?}", front.1);
        for (_, headers, body) in [&front, &worker] {
            let length: usize = header(headers, "content-length").unwrap().parse().unwrap();
            match method {
                "HEAD" => assert!(body.is_empty() && length > 100, "{length}"),
                // (The helper reads bodies as text: gzip's bytes are not.)
                _ if extra.is_empty() => assert_eq!(length, body.len()),
                _ => assert!(length > 0),
            }
        }
    }
    let (_, headers, body) = ask("GET", &[], false);
    let hosts: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(hosts["count"], 3);
    assert_eq!(header(&headers, "content-length"), Some(body.len().to_string().as_str()));
    let etag = header(&headers, "etag").unwrap().to_string();
    for from_worker in [false, true] {
        let (status, headers, body) = ask("GET", &[("If-None-Match", &etag)], from_worker);
        assert_eq!((status, body.as_str()), (304, ""), "from the worker: {from_worker}");
        assert_eq!(header(&headers, "etag"), Some(etag.as_str()));
    }
}

#[test]
fn cors_is_off_unless_configured() {
    let dir = TempDir::new("cors");
    let hbd = Hbd::start(&dir, "");
    let origin = [("Origin", "https://dash.example")];
    let (_, headers, _) = http_request(hbd.http, "GET", "/api/0/hosts", &origin);
    assert_eq!(header(&headers, "access-control-allow-origin"), None);

    let dir = TempDir::new("cors-on");
    let hbd = Hbd::start(&dir, "cors_origins: [\"https://dash.example\"]\n");
    let (status, headers, _) = http_request(hbd.http, "OPTIONS", "/api/0/hosts", &origin);
    assert_eq!(status, 204);
    assert_eq!(header(&headers, "access-control-allow-origin"), Some("https://dash.example"));
    let (_, headers, _) = http_request(hbd.http, "GET", "/api/0/hosts", &[("Origin", "https://evil.example")]);
    assert_eq!(header(&headers, "access-control-allow-origin"), None);
}

#[test]
fn metrics_pass_promtool_and_carry_hosts_rejections_and_plugin_values() {
    let dir = TempDir::new("metrics");
    let hbd = Hbd::start(&dir, "");
    send_plugins(
        &hbd,
        "web1",
        1,
        json!({"disk_monitor": {"kind": "monitor", "at": now(), "data": {"partitions": {"/": {"percent": 41.5}}, "odd \"key\"\n": 3}}}),
    );
    client("127.0.0.1:0").send_to(b"junk", hbd.addr).unwrap();
    let text = wait_for("metrics with the rejected datagram", || {
        let (status, headers, body) = http_request(hbd.http, "GET", "/metrics", &[]);
        assert_eq!(status, 200);
        assert!(header(&headers, "content-type").unwrap().starts_with("text/plain; version=0.0.4"));
        body.contains("hbd_datagrams_rejected_total{reason=\"not_json\"} 1").then_some(body)
    });
    for line in [
        "hbd_host_up{host=\"web1\"} 1",
        "hbd_host_latency_seconds{host=\"web1\"} 0.0015",
        "hbd_plugin_metric{host=\"web1\",plugin=\"disk_monitor\",metric=\"partitions./.percent\"} 41.5",
        "hbd_plugin_metric{host=\"web1\",plugin=\"disk_monitor\",metric=\"odd \\\"key\\\"\\n\"} 3",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
    }
    assert_promtool_clean(&text);

    // ?plugins=none: everything but the plugin data (a big fleet's scrape).
    let (status, _, lean) = http_request(hbd.http, "GET", "/metrics?plugins=none", &[]);
    assert_eq!(status, 200);
    assert!(lean.lines().any(|l| l == "hbd_host_up{host=\"web1\"} 1"), "{lean}");
    assert!(!lean.contains("hbd_plugin_metric"), "{lean}");
    assert_promtool_clean(&lean);
    let (_, _, all) = http_request(hbd.http, "GET", "/metrics?plugins=all", &[]);
    assert!(all.contains("hbd_plugin_metric{host=\"web1\""), "{all}");
    for (query, named) in [("plugins=some", "plugins="), ("plugin=none", "\\\"plugin\\\"")] {
        let (status, _, body) = http_request(hbd.http, "GET", &format!("/metrics?{query}"), &[]);
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body.contains(named), "{query}: {body}");
    }
}

#[test]
fn pages_and_assets_are_built_in_typed_and_confined() {
    let dir = TempDir::new("www");
    let hbd = Hbd::start(&dir, "");
    // The overview is the landing page (issue 13); /live keeps the name.
    let (status, _, landing) = http_request(hbd.http, "GET", "/", &[]);
    assert_eq!(status, 200);
    assert!(landing.contains("<title>hbd · overview</title>"), "{landing}");
    // A host's page lives at /hosts/NAME only.
    let (status, _, page) = http_request(hbd.http, "GET", "/hosts/web1", &[]);
    assert!(status == 200 && page.contains("/static/host.js"), "{status}");
    assert_eq!(http_request(hbd.http, "GET", "/host", &[]).0, 404);

    let (status, headers, body) = http_request(hbd.http, "GET", "/live", &[]);
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-type"), Some("text/html; charset=utf-8"));
    assert!(header(&headers, "content-security-policy").unwrap().contains("script-src 'self'"));
    assert!(
        body.contains(&format!("<meta name=\"hbd-ws-port\" content=\"{}\">", hbd.ws.port())),
        "the page knows the WebSocket port"
    );
    let (status, _, body) = http_request(hbd.http, "GET", "/plugins", &[]);
    assert!(status == 200 && body.contains("id=\"charts\""));

    for (path, content_type) in
        [("/static/hbd.css", "text/css; charset=utf-8"), ("/static/live.js", "text/javascript; charset=utf-8")]
    {
        let (status, headers, body) = http_request(hbd.http, "GET", path, &[]);
        assert_eq!((status, header(&headers, "content-type")), (200, Some(content_type)), "{path}");
        assert_eq!(header(&headers, "cache-control"), Some("public, max-age=3600"));
        assert_eq!(header(&headers, "x-content-type-options"), Some("nosniff"));
        assert!(!body.is_empty());
    }
    for path in [
        "/static/../Cargo.toml",
        "/static/%2e%2e%2fCargo.toml",
        "/static/..%2f..%2fetc%2fpasswd",
        "/static/",
        "/static/nope.js",
        "/live.html",
        "/..",
        "/Cargo.toml",
    ] {
        let (status, _, body) = http_request(hbd.http, "GET", path, &[]);
        assert_eq!(status, 404, "{path}: {body}");
        assert!(!body.contains("[package]") && !body.contains("root:"), "{path} leaked a file");
    }
}

#[test]
fn templates_dir_replaces_built_in_files_by_name_only() {
    let dir = TempDir::new("templates");
    let www = dir.join("www");
    std::fs::create_dir_all(www.join("static")).unwrap();
    std::fs::write(www.join("live.html"), "custom page, ws on {{ws_port}}").unwrap();
    std::fs::write(www.join("static").join("hbd.css"), "body { color: red }").unwrap();
    std::fs::write(www.join("secret.txt"), "not to be served").unwrap();
    let hbd = Hbd::start(&dir, &format!("templates_dir: {}\n", www.display()));
    let (_, _, body) = http_request(hbd.http, "GET", "/live", &[]);
    assert_eq!(body, format!("custom page, ws on {}", hbd.ws.port()));
    let (_, _, body) = http_request(hbd.http, "GET", "/static/hbd.css", &[]);
    assert_eq!(body, "body { color: red }");
    let (_, _, body) = http_request(hbd.http, "GET", "/static/common.js", &[]);
    assert!(body.contains("const hbd"), "files it lacks come built in");
    for path in ["/secret.txt", "/secret", "/static/secret.txt"] {
        assert_eq!(http_request(hbd.http, "GET", path, &[]).0, 404, "{path}");
    }
}

/// Issue 20: `/api/0/journal` and `/api/0/events` answer the ends of the
/// journal's two files: limits, the type filter, lines from the rotated
/// file, errors, and the answer without a journal.
#[test]
fn journal_and_events_endpoints() {
    let dir = TempDir::new("journal-api");
    // Small files: the messages rotate into .1 and .2 (about 8 lines a file).
    let hbd = Hbd::start(
        &dir,
        "grace: 0\njournal_max_size: 1500\njournal_max_backups: 3\nthresholds:\n  cpu_monitor:\n    cpu_percent: {warning: 80}\n",
    );
    let udp = client("127.0.0.1:0");
    for seq in 0..20 {
        send_once(
            &udp,
            hbd.addr,
            &json!({"ID": "HTB", "name": format!("web-{}", seq % 4), "interval": 30, "seq": seq}),
        );
    }
    let cpu = json!({"cpu_monitor": {"kind": "monitor", "at": now(), "data": {"cpu_percent": 85.0}}});
    send_once(&udp, hbd.addr, &json!({"ID": "HTB", "name": "web-0", "interval": 30, "seq": 20, "plugins": cpu}));
    send_once(&udp, hbd.addr, &json!({"ID": "HTB", "name": "flaky", "interval": 1, "seq": 21}));

    // Everything written (the journal writes within a second).
    let file = |name: &str| journal_lines_of(&hbd.journal_dir().join(name));
    wait_for("every message in the files", || {
        let written = ["messages.journal.2", "messages.journal.1", "messages.journal"].map(|f| file(f).len());
        (written.iter().sum::<usize>() == 22 && written.iter().all(|n| *n > 0)).then_some(())
    });
    let seqs = |body: &Value| -> Vec<u64> {
        body["messages"].as_array().unwrap().iter().map(|l| l["message"]["seq"].as_u64().unwrap()).collect()
    };
    let (current, older) = (file("messages.journal"), file("messages.journal.1"));
    let in_two = current.len() + older.len();
    let (status, all) = get_json(hbd.http, "/api/0/journal?limit=1000");
    assert_eq!(status, 200, "{all}");
    assert_eq!(all["journal_enabled"], true);
    assert_eq!(all["count"], in_two, "the current file and .1, not .2: {all}");
    assert_eq!(all["messages"].as_array().unwrap(), &[older, current.clone()].concat(), "the lines as written");
    assert_eq!(seqs(&all), (22 - in_two as u64..22).collect::<Vec<_>>(), "oldest first");
    let line = &all["messages"][in_two - 1];
    let keys: Vec<&str> = line.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["datetime", "message", "source_ip", "source_port", "timestamp"], "the journal's line: {line}");
    assert_eq!(line["message"], json!({"ID": "HTB", "name": "flaky", "interval": 1, "seq": 21}));
    let spanning = current.len() + 3;
    let (_, some) = get_json(hbd.http, &format!("/api/0/journal?limit={spanning}"));
    assert_eq!(seqs(&some), (22 - spanning as u64..22).collect::<Vec<_>>(), "the newest, three from .1");
    let (_, one) = get_json(hbd.http, "/api/0/journal?limit=1");
    assert_eq!(seqs(&one), [21]);
    let (_, default) = get_json(hbd.http, "/api/0/journal");
    assert_eq!(default["count"], in_two, "at most 50 by default");

    // Events: every type, one type, several.
    let kinds = |body: &Value| -> Vec<String> {
        body["events"].as_array().unwrap().iter().map(|l| l["type"].as_str().unwrap().to_string()).collect()
    };
    let events = wait_for("the alerts and host_down among the events", || {
        let (_, body) = get_json(hbd.http, "/api/0/events?limit=1000");
        let kinds = kinds(&body);
        (kinds.iter().filter(|k| *k == "alert").count() == 2 && kinds.contains(&"host_down".to_string()))
            .then_some(body)
    });
    assert!(events["events"].as_array().unwrap().iter().all(|l| l.get("message").is_none()), "{events}");
    let (_, new) = get_json(hbd.http, "/api/0/events?type=host_new");
    assert_eq!(kinds(&new), ["host_new"; 5]);
    let names: Vec<&str> = new["events"].as_array().unwrap().iter().map(|l| l["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["web-0", "web-1", "web-2", "web-3", "flaky"], "oldest first");
    let (_, alerts) = get_json(hbd.http, "/api/0/events?type=alert&limit=1");
    assert_eq!(alerts["count"], 1);
    assert_eq!(alerts["events"][0]["name"], "flaky", "the newest: flaky's host-down alert");
    assert!(alerts["events"][0]["text"].as_str().unwrap().starts_with("CRITICAL: flaky - host down"), "{alerts}");
    let (_, warning) = get_json(hbd.http, "/api/0/events?type=alert&limit=2");
    assert_eq!(warning["events"][0]["text"], "WARNING: web-0 - cpu_monitor.cpu_percent = 85.0");
    let (_, two) = get_json(hbd.http, "/api/0/events?type=host_down,alert&limit=1000");
    assert_eq!(kinds(&two).len(), 3, "{two}");
    let (_, same) = get_json(hbd.http, "/api/0/events?type=host_down&type=alert%2Chost_down&limit=1000");
    assert_eq!(same["events"], two["events"], "repeated and percent-encoded types");
    let (_, none) = get_json(hbd.http, "/api/0/events?type=dns_update");
    assert_eq!(none, json!({"journal_enabled": true, "count": 0, "events": []}));
    let (status, headers, body) = http_request(hbd.http, "HEAD", "/api/0/events?type=alert", &[]);
    assert_eq!((status, body.as_str()), (200, ""));
    assert_eq!(header(&headers, "content-type"), Some("application/json"));

    // Bad requests: the JSON error shape, status 400.
    for path in [
        "/api/0/journal?limit=0",
        "/api/0/journal?limit=1001",
        "/api/0/journal?limit=abc",
        "/api/0/journal?limit=",
        "/api/0/events?limit=-1",
        "/api/0/events?type=nope",
        "/api/0/events?type=",
        "/api/0/events?type=alert,",
    ] {
        let (status, body) = get_json(hbd.http, path);
        assert_eq!(status, 400, "{path}: {body}");
        let error = body["error"].as_str().unwrap_or_else(|| panic!("{path}: {body}"));
        assert!(
            error.contains("limit must be an integer from 1 to 1000") || error.contains("unknown event type"),
            "{error}"
        );
        assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    }
    let (status, body) = get_json(hbd.http, "/api/0/journal?limit=2&x=1");
    assert_eq!((status, &body["count"]), (200, &json!(2)), "other parameters are ignored");
    let (status, _, _) = http_request(hbd.http, "POST", "/api/0/events", &[]);
    assert_eq!(status, 405);

    // Without a journal: 200, empty, and said so.
    let off_dir = TempDir::new("journal-api-off");
    let off = Hbd::start(&off_dir, "journal_enabled: false\n");
    heartbeat(&client("127.0.0.1:0"), off.addr, "unjournaled", 30.0, 1);
    assert_eq!(
        get_json(off.http, "/api/0/journal"),
        (200, json!({"journal_enabled": false, "count": 0, "messages": []}))
    );
    assert_eq!(
        get_json(off.http, "/api/0/events?type=host_new&limit=5"),
        (200, json!({"journal_enabled": false, "count": 0, "events": []}))
    );
    assert_eq!(get_json(off.http, "/api/0/events?limit=5000").0, 400, "a bad limit is still an error");
    assert!(!off.journal_dir().exists(), "no journal written");
}

/// The lines of one journal file (a line being written left out).
fn journal_lines_of(path: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

/// Issue 25: the part of the host list a user needs, through real HTTP:
/// filters, fields and pages that follow a cursor; the plain list unchanged.
#[test]
fn the_host_list_takes_filters_fields_and_pages() {
    let dir = TempDir::new("host-query");
    let hbd = Hbd::start(&dir, "");
    let udp = client("127.0.0.1:0");
    for (seq, name) in ["db1", "db2", "db3", "web1", "web2"].iter().enumerate() {
        heartbeat(&udp, hbd.addr, name, 30.0, seq as u64);
    }
    // An ACK leaves before the host table has the heartbeat: wait for all five.
    let plain = wait_for("five hosts", || Some(get_json(hbd.http, "/api/0/hosts").1).filter(|l| l["count"] == 5));
    assert!(plain.get("total").is_none(), "the plain list as before: {plain}");
    let (status, first) = get_json(hbd.http, "/api/0/hosts?name=db*&status=up&fields=name,status&limit=2");
    assert_eq!(status, 200);
    assert_eq!(first["hosts"], serde_json::json!([{"name": "db1", "status": "up"}, {"name": "db2", "status": "up"}]));
    assert_eq!((&first["total"], &first["next"]), (&serde_json::json!(3), &serde_json::json!("db2")));
    let (_, second) = get_json(hbd.http, "/api/0/hosts?name=db*&status=up&fields=name,status&limit=2&after=db2");
    assert_eq!(second["hosts"], serde_json::json!([{"name": "db3", "status": "up"}]));
    assert!(second.get("next").is_none());
    let (_, down) = get_json(hbd.http, "/api/0/hosts?status=down");
    assert_eq!((&down["count"], &down["total"]), (&serde_json::json!(0), &serde_json::json!(0)));
    for (query, says) in [
        ("status=asleep", "status \"asleep\" is not up, down or unreachable"),
        ("fields=name,%3Cb%3E", "no field \"<b>\": hosts have "),
        ("limit=100000", "limit must be an integer from 1 to 10000"),
    ] {
        let (status, error) = get_json(hbd.http, &format!("/api/0/hosts?{query}"));
        assert_eq!(status, 400, "{query}");
        assert!(error["error"].as_str().unwrap().starts_with(says), "{query}: {error}");
    }
}
