//! Silences and maintenance windows with the real binary and a Mattermost
//! stand-in that records what it gets: a silence holds a host-down
//! notification, and one message follows when it ends if the host is still
//! down, none if it came back; silences survive a restart; they are listed
//! and ended through the API and `hbd silence`; bad bodies are 400s; a
//! maintenance window in force holds a host-down too.

mod support;

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use support::standin::StandIn;
use support::*;

const ALICE: &str = "alice-admin-secret-0123";
const BOB: &str = "bob-read-secret-0123456";

/// The notification stand-in: every Mattermost message's text, in arrival order.
struct Mattermost(StandIn);

impl Mattermost {
    fn start() -> Mattermost {
        Mattermost(StandIn::start(false))
    }

    fn texts(&self) -> Vec<String> {
        self.0.mattermost_texts()
    }

    fn config(&self) -> String {
        format!("grace: 0\nnotify_group_window: 0.2\nthreshold_renotify_interval: 0\n{}", self.0.mattermost_config())
    }
}

fn tokens(dir: &TempDir) -> PathBuf {
    let path = dir.join("tokens");
    fs::write(&path, format!("alice admin {ALICE}\nbob read {BOB}\n")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// A request with a body; status and the answer's JSON.
fn send(hbd: &Hbd, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, Value) {
    let mut stream = std::net::TcpStream::connect_timeout(&hbd.http, DEADLINE).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        hbd.http,
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status");
    (status, serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}")))
}

fn post(hbd: &Hbd, body: &Value) -> (u16, Value) {
    send(hbd, "POST", "/api/0/silences", Some(ALICE), &body.to_string())
}

/// Runs `hbd -c CONFIG ARGS…` against the running daemon.
fn hbd_ctl(hbd: &Hbd, dir: &TempDir, args: &[&str]) -> (Option<i32>, String, String) {
    let config = dir.join("ctl.yaml");
    let text =
        fs::read_to_string(&hbd.config).unwrap().replace("hbd_port: 0", &format!("hbd_port: {}", hbd.http.port()));
    fs::write(&config, text).unwrap();
    let out = hbd_command().arg("-c").arg(&config).args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn alert_of<'a>(alerts: &'a Value, host: &str) -> Option<&'a Value> {
    alerts["alerts"].as_array()?.iter().find(|a| a["hostname"] == host)
}

#[test]
fn a_silence_holds_a_host_down_and_one_message_follows_only_if_it_is_still_down() {
    let dir = TempDir::new("silence-holds");
    let mattermost = Mattermost::start();
    let hbd = Hbd::start(&dir, &format!("{}api_tokens_file: {}\n", mattermost.config(), tokens(&dir).display()));
    let (status, silence) = post(&hbd, &json!({"host": "db*", "duration": "6s", "comment": "kernel <b>update</b>"}));
    assert_eq!(status, 201, "{silence}");
    assert_eq!((&silence["by"], &silence["active"], &silence["plugin"]), (&json!("alice"), &json!(true), &Value::Null));
    let udp = client("127.0.0.1:0");
    heartbeat(&udp, hbd.addr, "db1", 1.0, 1);
    heartbeat(&udp, hbd.addr, "db2", 1.0, 2);
    for name in ["db1", "db2"] {
        hbd.wait_journal("the host down", |l| event_of(l, "host_down", name).is_some());
    }
    let (_, alerts) = get_json(hbd.http, "/api/0/alerts");
    let silenced = &alert_of(&alerts, "db1").expect("db1's host-down alert")["silenced"];
    assert_eq!(
        (&silenced["id"], &silenced["by"], &silenced["comment"]),
        (&silence["id"], &json!("alice"), &json!("kernel <b>update</b>"))
    );
    assert_eq!(silenced["until"], silence["ends_at"]);
    wait_for("the hosts list marked silenced", || {
        let (_, hosts) = get_json(hbd.http, "/api/0/hosts");
        hosts["hosts"].as_array()?.iter().all(|h| h["silenced"]["id"] == silence["id"]).then_some(())
    });
    let (_, host) = get_json(hbd.http, "/api/0/hosts/db1");
    assert_eq!(host["silenced"]["id"], silence["id"]);
    let metrics = http_request(hbd.http, "GET", "/metrics", &[]).2;
    assert!(metrics.contains("hbd_silences{state=\"active\"} 1\n"), "{metrics}");
    assert!(metrics.contains("hbd_alerts_silenced 2\n"), "{metrics}");
    assert_promtool_clean(&metrics);
    // db2 comes back while silenced (for longer than the test).
    heartbeat(&udp, hbd.addr, "db2", 60.0, 3);
    hbd.wait_journal("db2 back", |l| event_of(l, "host_up", "db2").is_some());

    let ended = hbd.wait_journal("the silence expired", |l| l["type"] == "silence_ended");
    assert_eq!((&ended["id"], &ended["by"]), (&silence["id"], &json!("expired")));
    let texts = wait_for("the message after the silence", || Some(mattermost.texts()).filter(|t| !t.is_empty()));
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert!(texts[0].contains("db1") && texts[0].contains("host down"), "{texts:?}");
    assert!(texts[0].contains("held by a silence until now"), "the transition itself was held: {texts:?}");
    assert!(!texts[0].contains("db2"), "db2 came back meanwhile: {texts:?}");
    let (_, alerts) = get_json(hbd.http, "/api/0/alerts");
    assert!(alert_of(&alerts, "db1").is_some_and(|a| a.get("silenced").is_none()), "{alerts}");
    let (_, list) = get_json(hbd.http, "/api/0/silences");
    assert_eq!(list, json!({"silences": [], "maintenance": []}));
}

#[test]
fn silences_survive_a_restart_and_are_listed_and_ended_by_api_and_hbd_silence() {
    let dir = TempDir::new("silence-api");
    let mut hbd = Hbd::start(&dir, &format!("api_tokens_file: {}\n", tokens(&dir).display()));
    let hostile = "<script>alert(1)</script> & \"quotes\"";
    let (code, stdout, stderr) =
        hbd_ctl(&hbd, &dir, &["silence", "add", "--host", "web*", "--for", "1h30m", "--comment", hostile]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.starts_with("hbd: silence ") && stdout.contains("web* (holding)"), "{stdout}");
    let first = stdout.split_whitespace().nth(2).unwrap().to_string();
    let (status, second) = post(
        &hbd,
        &json!({"host": "db1", "plugin": "disk_monitor", "metric_path": "partitions./.percent",
                "starts_at": now() + 600.0, "ends_at": now() + 1200.0, "comment": "later"}),
    );
    assert_eq!(status, 201, "{second}");
    assert_eq!(second["active"], false);
    let (_, list) = get_json(hbd.http, "/api/0/silences");
    let ids: Vec<&Value> = list["silences"].as_array().unwrap().iter().map(|s| &s["id"]).collect();
    assert_eq!(ids, [&json!(first), &second["id"]]);
    assert_eq!(list["silences"][0]["comment"], hostile, "kept as text");
    let (status, one) = get_json(hbd.http, &format!("/api/0/silences/{first}"));
    assert_eq!((status, &one["host"]), (200, &json!("web*")));
    assert_eq!(get_json(hbd.http, "/api/0/silences/nosuch").0, 404);
    let (status, head, _) =
        http_request(hbd.http, "PUT", "/api/0/silences", &[("Authorization", &format!("Bearer {ALICE}"))]);
    assert_eq!(status, 405);
    assert!(head.iter().any(|(k, v)| k == "allow" && v == "GET, HEAD, POST, OPTIONS"), "{head:?}");
    let ends = list["silences"][0]["ends_at"].as_f64().unwrap() - list["silences"][0]["starts_at"].as_f64().unwrap();
    assert_eq!(ends, 5400.0);
    let metrics = http_request(hbd.http, "GET", "/metrics", &[]).2;
    assert!(
        metrics.contains("hbd_silences{state=\"active\"} 1\n")
            && metrics.contains("hbd_silences{state=\"pending\"} 1\n")
    );
    let (code, stdout, _) = hbd_ctl(&hbd, &dir, &["silence", "list"]);
    assert_eq!(code, Some(0));
    assert!(stdout.contains(&first) && stdout.contains(hostile) && stdout.contains("(to come)"), "{stdout}");

    // Bad bodies are 400s naming the field; writes need an admin token.
    for (body, names) in [
        ("{", "JSON"),
        (r#"{"duration":"2h","comment":"c"}"#, "host"),
        (r#"{"host":"a","duration":"2 hours","comment":"c"}"#, "duration"),
        (r#"{"host":"a","duration":"2h"}"#, "comment"),
        (r#"{"host":"a","duration":"2h","ends_at":1,"comment":"c"}"#, "not both"),
        (r#"{"host":"a","ends_at":1,"comment":"c"}"#, "ends_at"),
        (r#"{"host":"a","metric_path":"x","duration":60,"comment":"c"}"#, "plugin"),
    ] {
        let (status, error) = send(&hbd, "POST", "/api/0/silences", Some(ALICE), body);
        assert_eq!(status, 400, "{body}: {error}");
        assert!(error["error"].as_str().unwrap().contains(names), "{body}: {error}");
    }
    let good = r#"{"host":"a","duration":60,"comment":"c"}"#;
    assert_eq!(send(&hbd, "POST", "/api/0/silences", None, good).0, 401);
    assert_eq!(send(&hbd, "POST", "/api/0/silences", Some(BOB), good).0, 403);
    assert_eq!(send(&hbd, "DELETE", "/api/0/silences/nosuch", Some(ALICE), "").0, 404);
    let (code, _, stderr) = hbd_ctl(&hbd, &dir, &["silence", "add", "--host", "x", "--for", "soon", "--comment", "c"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--for: `soon` is not a duration"), "{stderr}");
    let (code, _, stderr) = hbd_ctl(&hbd, &dir, &["silence", "add", "--host", "x", "--for", "1h"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--comment"), "{stderr}");

    // A restart keeps them, and they still hold.
    assert_eq!(hbd.stop().code(), Some(0));
    let config = hbd.config.clone();
    hbd = Hbd::start_with_config(&dir, &config);
    let (_, list) = get_json(hbd.http, "/api/0/silences");
    assert_eq!(list["silences"].as_array().unwrap().len(), 2, "{list}");
    heartbeat(&client("127.0.0.1:0"), hbd.addr, "web1", 30.0, 1);
    let host = wait_for("web1 known", || Some(get_json(hbd.http, "/api/0/hosts/web1")).filter(|r| r.0 == 200)).1;
    assert_eq!(host["silenced"]["id"], json!(first), "{host}");

    let (code, stdout, stderr) = hbd_ctl(&hbd, &dir, &["silence", "expire", &first]);
    assert_eq!((code, stdout), (Some(0), format!("hbd: silence {first} ended\n")), "{stderr}");
    let (code, _, stderr) = hbd_ctl(&hbd, &dir, &["silence", "expire", &first]);
    assert_eq!(code, Some(1));
    assert!(stderr.starts_with("hbd: hbd answered 404: "), "{stderr}");
    let path = format!("/api/0/silences/{}", second["id"].as_str().unwrap());
    let (status, ended) = send(&hbd, "DELETE", &path, Some(ALICE), "");
    assert_eq!((status, &ended["id"], &ended["active"]), (200, &second["id"], &json!(false)));
    let (_, list) = get_json(hbd.http, "/api/0/silences");
    assert_eq!(list["silences"], json!([]));
    let (_, host) = get_json(hbd.http, "/api/0/hosts/web1");
    assert!(host.get("silenced").is_none(), "{host}");
    let line = hbd.wait_journal("the early end", |l| l["type"] == "silence_ended" && l["id"] == second["id"]);
    assert_eq!(line["by"], "alice");
    let added = hbd.wait_journal("the addition", |l| l["type"] == "silence_added" && l["id"] == json!(first));
    assert_eq!((&added["by"], &added["comment"]), (&json!("alice"), &json!(hostile)));
}

#[test]
fn a_maintenance_window_in_force_holds_a_host_down() {
    let dir = TempDir::new("maintenance");
    let mattermost = Mattermost::start();
    // A zone three hours east of UTC, no daylight saving time: the window
    // began a minute ago there.
    let local = now() as i64 + 3 * 3600;
    let start = (local - 60).rem_euclid(86400);
    let window = format!(
        "maintenance:\n  - name: kernel\n    hosts: [\"db*\"]\n    days: daily\n    start: \"{:02}:{:02}\"\n    end: 10m\n    comment: weekly kernel updates\n",
        start / 3600,
        start % 3600 / 60
    );
    let config = dir.join("hbd.yaml");
    fs::write(&config, format!("{}{}{window}", base_config(dir.path(), "127.0.0.1"), mattermost.config())).unwrap();
    let hbd = Hbd::start_with_env(&dir, &config, &[("TZ", "XYZ-3")]);
    let started = hbd.wait_journal("the window in force at start-up", |l| l["type"] == "maintenance_started");
    assert_eq!((&started["name"], &started["comment"]), (&json!("kernel"), &json!("weekly kernel updates")));
    let udp = client("127.0.0.1:0");
    heartbeat(&udp, hbd.addr, "db1", 1.0, 1);
    heartbeat(&udp, hbd.addr, "web1", 1.0, 2);
    let texts =
        wait_for("web1's message", || Some(mattermost.texts()).filter(|t| t.iter().any(|t| t.contains("web1"))));
    assert!(texts.iter().all(|t| !t.contains("db1")), "db1 is held by the window: {texts:?}");
    hbd.wait_journal("db1 down", |l| event_of(l, "host_down", "db1").is_some());
    let (_, alerts) = get_json(hbd.http, "/api/0/alerts");
    let silenced = &alert_of(&alerts, "db1").expect("db1's alert")["silenced"];
    assert_eq!((&silenced["id"], &silenced["by"]), (&json!("maintenance:kernel"), &json!("maintenance")));
    assert!(alert_of(&alerts, "web1").is_some_and(|a| a.get("silenced").is_none()));
    let (_, list) = get_json(hbd.http, "/api/0/silences");
    let w = &list["maintenance"][0];
    assert_eq!(
        (&w["name"], &w["active"], &w["days"]),
        (&json!("kernel"), &json!(true), &json!(["mon", "tue", "wed", "thu", "fri", "sat", "sun"]))
    );
    assert_eq!(w["ends_at"].as_f64().unwrap() - w["starts_at"].as_f64().unwrap(), 600.0);
    assert!(mattermost.texts().iter().all(|t| !t.contains("db1")));
}

#[test]
fn a_bad_maintenance_window_is_a_config_error_naming_its_key() {
    let dir = TempDir::new("maintenance-bad");
    let config = dir.join("hbd.yaml");
    fs::write(
        &config,
        "maintenance:\n  - name: x\n    hosts: db*\n    days: [sun, funday]\n    start: \"2am\"\n    end: \"04:00\"\n    duration: 2h\n",
    )
    .unwrap();
    let out = hbd_command().args(["--check-config", "-c"]).arg(&config).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    for expected in [
        "maintenance[0].days[1]: unknown day `funday`",
        "maintenance[0].start: `2am` is not a time of day",
        "maintenance[0]: give end or duration, not both",
        "maintenance[0].comment: missing",
    ] {
        assert!(stderr.contains(expected), "{expected}: {stderr}");
    }
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}
