//! What operators do to a running hbd, with the real binary: API tokens
//! (reads open, writes for admins only, never from another site), forgetting
//! a host by hand (`DELETE /api/0/hosts/NAME`, `hbd forget`) and by
//! `host_expire_after`, each journaled with who did it; acknowledging an
//! alert (`POST /api/0/hosts/NAME/ack`, `hbd ack`); hosts behind a parent
//! (`parents:`) that is down.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use serde_json::{json, Value};
use support::standin::StandIn;
use support::*;

const ALICE: &str = "alice-admin-secret-0123";
const BOB: &str = "bob-read-secret-0123456";

/// A tokens file only its owner may read, and a config naming it.
fn tokens(dir: &TempDir, mode: u32) -> PathBuf {
    let path = dir.join("tokens");
    fs::write(&path, format!("# who may do what\nalice admin {ALICE}\nbob read {BOB}\n")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    path
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

fn delete(hbd: &Hbd, path: &str, headers: &[(&str, &str)]) -> (u16, Vec<(String, String)>, Value) {
    let (status, head, body) = http_request(hbd.http, "DELETE", path, headers);
    (status, head, json(&body))
}

#[test]
fn a_tokens_file_open_to_others_stops_start_up_naming_it() {
    let dir = TempDir::new("tokens-open");
    let path = tokens(&dir, 0o644);
    let config = dir.join("hbd.yaml");
    fs::write(&config, format!("{}api_tokens_file: {}\n", base_config(dir.path(), "127.0.0.1"), path.display()))
        .unwrap();
    let out = hbd_command().args(["--check-config", "-c"]).arg(&config).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains(&format!("api_tokens_file: {} is open to others (mode 0644)", path.display())), "{stderr}");
    assert!(!stderr.contains(ALICE), "no secret in the message: {stderr}");
    // Readable by its group (root:hbd 0640, as the package installs it) is fine.
    fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
    let out = hbd_command().args(["--check-config", "-c"]).arg(&config).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!String::from_utf8_lossy(&out.stdout).contains(ALICE), "--check-config never shows a secret");
}

#[test]
fn writes_need_an_admin_token_and_a_forgotten_host_stays_gone() {
    let dir = TempDir::new("forget");
    let path = tokens(&dir, 0o600);
    let mut hbd = Hbd::start(&dir, &format!("api_tokens_file: {}\n", path.display()));
    let udp = client("127.0.0.1:0");
    for (seq, name) in ["old1", "keep1", "gone2"].iter().enumerate() {
        heartbeat(&udp, hbd.addr, name, 30.0, seq as u64);
    }
    // Reads stay open, as the Python users' scripts expect.
    let (status, _) = get_json(hbd.http, "/api/0/hosts/old1");
    assert_eq!(status, 200);

    let admin = format!("Bearer {ALICE}");
    let reader = format!("Bearer {BOB}");
    let (status, head, body) = delete(&hbd, "/api/0/hosts/old1", &[]);
    assert_eq!(status, 401, "{body}");
    assert!(body["error"].as_str().is_some_and(|e| e.contains("Authorization: Bearer")), "{body}");
    assert!(head.iter().any(|(k, v)| k == "www-authenticate" && v.starts_with("Bearer")), "{head:?}");
    let (status, _, body) = delete(&hbd, "/api/0/hosts/old1", &[("Authorization", "Bearer not-a-known-secret-at-all")]);
    assert_eq!((status, body["error"].as_str()), (401, Some("unknown token")));
    let (status, _, body) = delete(&hbd, "/api/0/hosts/old1", &[("Authorization", &reader)]);
    assert_eq!(status, 403, "{body}");
    assert!(body["error"].as_str().is_some_and(|e| e.contains("bob may read, not write")), "{body}");
    // A page of another site cannot write, token or not.
    let (status, _, body) =
        delete(&hbd, "/api/0/hosts/old1", &[("Authorization", &admin), ("Origin", "http://evil.example")]);
    assert_eq!(status, 403, "{body}");
    let (status, _, body) = delete(&hbd, "/api/0/hosts/old1", &[("Authorization", &admin)]);
    assert_eq!((status, &body["forgotten"], &body["by"]), (200, &Value::from("old1"), &Value::from("alice")), "{body}");
    let (status, _, _) = delete(&hbd, "/api/0/hosts/old1", &[("Authorization", &admin)]);
    assert_eq!(status, 404, "forgotten already");
    let (status, _) = get_json(hbd.http, "/api/0/hosts/old1");
    assert_eq!(status, 404);
    wait_for("the hosts list without old1", || {
        let (_, list) = get_json(hbd.http, "/api/0/hosts");
        (list["count"] == 2).then_some(())
    });
    let line = hbd.wait_journal("host_forgotten in the journal", |l| l["type"] == "host_forgotten");
    assert_eq!((&line["name"], &line["by"]), (&Value::from("old1"), &Value::from("alice")));
    // A method a path does not take says which ones it does.
    let (status, head, _) = http_request(hbd.http, "DELETE", "/api/0/alerts", &[("Authorization", &admin)]);
    assert_eq!(status, 405);
    assert!(head.iter().any(|(k, v)| k == "allow" && v == "GET, HEAD, OPTIONS"), "{head:?}");

    // `hbd forget`, as the man page shows it, with the config's token file
    // (and the port this hbd bound, where a user's config names its own).
    let config = dir.join("ctl.yaml");
    let text =
        fs::read_to_string(&hbd.config).unwrap().replace("hbd_port: 0", &format!("hbd_port: {}", hbd.http.port()));
    fs::write(&config, text).unwrap();
    let out = hbd_command().args(["-c"]).arg(&config).args(["forget", "keep1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hbd: forgot keep1\n");
    let out = hbd_command().args(["-c"]).arg(&config).args(["forget", "nosuchhost"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("hbd: hbd answered 404: "), "{stderr}");

    // Gone after a restart too: the state file no longer has them.
    assert_eq!(hbd.stop().code(), Some(0));
    let config = hbd.config.clone();
    hbd = Hbd::start_with_config(&dir, &config);
    for name in ["old1", "keep1"] {
        assert_eq!(get_json(hbd.http, &format!("/api/0/hosts/{name}")).0, 404, "{name} came back");
    }
    assert_eq!(get_json(hbd.http, "/api/0/hosts/gone2").0, 200);
}

#[test]
fn host_expire_after_forgets_a_silent_host_by_itself() {
    let dir = TempDir::new("expire");
    let hbd = Hbd::start(&dir, "grace: 0\nhost_expire_after: 2\n");
    heartbeat(&client("127.0.0.1:0"), hbd.addr, "vm-gone", 1.0, 1);
    let line = hbd.wait_journal("the host forgotten", |l| l["type"] == "host_forgotten");
    assert_eq!((&line["name"], &line["by"]), (&Value::from("vm-gone"), &Value::from("host_expire_after")));
    assert_eq!(get_json(hbd.http, "/api/0/hosts/vm-gone").0, 404);
    let (_, alerts) = get_json(hbd.http, "/api/0/alerts");
    assert_eq!(alerts["count"], 0, "its host-down alert went with it: {alerts}");
}

#[test]
fn reads_can_need_a_token_too() {
    let dir = TempDir::new("read-tokens");
    let path = tokens(&dir, 0o600);
    let hbd = Hbd::start(&dir, &format!("api_tokens_file: {}\napi_reads_need_token: yes\n", path.display()));
    heartbeat(&client("127.0.0.1:0"), hbd.addr, "web1", 30.0, 1);
    for path in ["/api/0/hosts", "/api/0/hosts/web1", "/api/0/alerts", "/metrics"] {
        let (status, _, _) = http_request(hbd.http, "GET", path, &[]);
        assert_eq!(status, 401, "{path}");
        let (status, _, _) = http_request(hbd.http, "GET", path, &[("Authorization", &format!("Bearer {BOB}"))]);
        assert_eq!(status, 200, "{path}");
    }
    // The WebSocket's snapshot and updates are reads too.
    let handshake = |token: Option<&str>| {
        use tungstenite::client::IntoClientRequest;
        let mut request = format!("ws://{}/", hbd.ws).into_client_request().unwrap();
        if let Some(token) = token {
            request.headers_mut().insert("Authorization", format!("Bearer {token}").parse().unwrap());
        }
        let stream = std::net::TcpStream::connect(hbd.ws).unwrap();
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        // The handshake's status: 101 when it is accepted.
        match tungstenite::client(request, stream) {
            Ok((_, response)) => response.status().as_u16(),
            Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(response))) => response.status().as_u16(),
            Err(e) => panic!("handshake: {e}"),
        }
    };
    assert_eq!(handshake(None), 401, "a WebSocket without a token");
    assert_eq!(handshake(Some(BOB)), 101, "a WebSocket with a read token");
    // Health checks and the pages stay open.
    assert_eq!(http_request(hbd.http, "GET", "/healthz", &[]).0, 200);
    assert_eq!(http_request(hbd.http, "GET", "/", &[]).0, 200);
}

// ── Acknowledgements ─────────────────────────────────────────────────────

/// The notification stand-in, as the acknowledgement and dependency tests read it.
struct Mattermost(StandIn);

impl Mattermost {
    fn start() -> Mattermost {
        Mattermost(StandIn::start(false))
    }

    fn texts(&self) -> Vec<String> {
        self.0.mattermost_texts()
    }

    fn config(&self) -> String {
        format!("notify_group_window: 0.2\n{}", self.0.mattermost_config())
    }
}

/// A request with a JSON body; status and parsed answer.
fn send_json(hbd: &Hbd, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, Value) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&hbd.http, DEADLINE).expect("connect to http");
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        hbd.http,
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("send request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    let (head, answer) = response.split_once("\r\n\r\n").expect("header/body separator");
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status line");
    (status, json(answer))
}

/// Events of the journal of one type (and host), in order.
fn events(hbd: &Hbd) -> Vec<Value> {
    hbd.journal().into_iter().filter(|l| l["type"].is_string()).collect()
}

#[test]
fn an_acknowledged_alert_sends_no_reminder() {
    let dir = TempDir::new("ack");
    let path = tokens(&dir, 0o600);
    let standin = Mattermost::start();
    let mut hbd = Hbd::start(
        &dir,
        &format!("grace: 0\nthreshold_renotify_interval: 1\napi_tokens_file: {}\n{}", path.display(), standin.config()),
    );
    let udp = client("127.0.0.1:0");
    heartbeat(&udp, hbd.addr, "db1", 1.0, 1);
    heartbeat(&udp, hbd.addr, "web1", 1.0, 2);
    wait_for("both host-down messages", || {
        let texts = standin.texts().concat();
        (texts.contains("CRITICAL: db1 - host down") && texts.contains("CRITICAL: web1 - host down")).then_some(())
    });

    let ack = "/api/0/hosts/db1/ack";
    let hostile = r#"{"comment": "<script>alert('x')</script> swapping the PSU"}"#;
    assert_eq!(send_json(&hbd, "POST", ack, None, hostile).0, 401);
    assert_eq!(send_json(&hbd, "POST", ack, Some(BOB), hostile).0, 403);
    for (path, body, status, error) in [
        (ack, "{\"comment\": ", 400, "not JSON"),
        (ack, "{}", 400, "comment is required"),
        (ack, "{\"comment\": \"x\", \"level\": 1}", 400, "unknown field \"level\""),
        ("/api/0/hosts/nosuch/ack", hostile, 404, "unknown host nosuch"),
        (
            ack,
            "{\"comment\": \"x\", \"plugin\": \"cpu_monitor\", \"metric_path\": \"x\"}",
            404,
            "no alert db1/cpu_monitor/x",
        ),
    ] {
        let (got, answer) = send_json(&hbd, "POST", path, Some(ALICE), body);
        assert_eq!(got, status, "{body}: {answer}");
        assert!(answer["error"].as_str().is_some_and(|e| e.contains(error)), "{body}: {answer}");
    }
    assert_eq!(send_json(&hbd, "DELETE", ack, Some(ALICE), "").0, 409, "not acknowledged yet");
    let (status, alert) = send_json(&hbd, "POST", ack, Some(ALICE), hostile);
    assert_eq!(status, 200, "{alert}");
    assert_eq!(
        (&alert["hostname"], &alert["plugin"], &alert["level"]),
        (&json!("db1"), &json!("heartbeat"), &json!("CRITICAL"))
    );
    assert_eq!(alert["acknowledged"]["by"], "alice");
    assert_eq!(alert["acknowledged"]["comment"], "<script>alert('x')</script> swapping the PSU", "kept as text");
    let (_, listed) = get_json(hbd.http, "/api/0/alerts");
    let db1 = listed["alerts"].as_array().unwrap().iter().find(|a| a["hostname"] == "db1").cloned().unwrap();
    assert_eq!(db1["acknowledged"], alert["acknowledged"], "{listed}");
    assert!(listed["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["hostname"] == "web1" && a.get("acknowledged").is_none()));

    // web1 reminds every second; db1, acknowledged, no more.
    let acked_at = |lines: &[Value]| lines.iter().position(|l| l["type"] == "acknowledged");
    let lines = wait_for("two reminders of web1 after the acknowledgement", || {
        let lines = events(&hbd);
        let after = &lines[acked_at(&lines)?..];
        let web1 = after.iter().filter(|l| l["type"] == "alert_reminder" && l["name"] == "web1").count();
        (web1 >= 2).then_some(lines)
    });
    let at = acked_at(&lines).unwrap();
    assert_eq!(
        (&lines[at]["by"], &lines[at]["name"], &lines[at]["plugin"]),
        (&json!("alice"), &json!("db1"), &json!("heartbeat"))
    );
    assert!(!lines[at..].iter().any(|l| l["type"] == "alert_reminder" && l["name"] == "db1"), "no reminder of db1");
    wait_for("web1's reminders at the stand-in", || {
        (standin.texts().iter().filter(|t| t.contains("REMINDER (CRITICAL): web1")).count() >= 2).then_some(())
    });
    let db1_reminders = lines[..at].iter().filter(|l| l["type"] == "alert_reminder" && l["name"] == "db1").count();
    let sent = standin.texts().iter().filter(|t| t.contains("REMINDER (CRITICAL): db1")).count();
    assert!(sent <= db1_reminders, "the stand-in got only db1's reminders from before: {:?}", standin.texts());

    // Removed, the reminders come back.
    let (status, alert) = send_json(&hbd, "DELETE", ack, Some(ALICE), "");
    assert_eq!(status, 200, "{alert}");
    assert!(alert.get("acknowledged").is_none(), "{alert}");
    hbd.wait_journal("a reminder of db1 after ack_removed", |l| l["type"] == "alert_reminder" && l["name"] == "db1");
    let removed = hbd.wait_journal("ack_removed", |l| l["type"] == "ack_removed");
    assert_eq!((&removed["by"], &removed["name"]), (&json!("alice"), &json!("db1")));

    // hbd ack, as the man page shows it; web1 back up is OK: nothing to acknowledge.
    let config = dir.join("ctl.yaml");
    let text =
        fs::read_to_string(&hbd.config).unwrap().replace("hbd_port: 0", &format!("hbd_port: {}", hbd.http.port()));
    fs::write(&config, text).unwrap();
    let hbd_ack = |args: &[&str]| {
        let out = hbd_command().arg("-c").arg(&config).arg("ack").args(args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = hbd_ack(&["db1", "--comment", "on it"]);
    assert_eq!((code, stdout.as_str()), (Some(0), "hbd: acknowledged db1 (host down)\n"), "{stderr}");
    let (code, _, stderr) = hbd_ack(&["db1/cpu_monitor/x", "--comment", "on it"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.starts_with("hbd: hbd answered 404: no alert db1/cpu_monitor/x"), "{stderr}");
    let (code, _, stderr) = hbd_ack(&["db1"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("ack needs --comment TEXT (or --remove)"), "{stderr}");
    let (code, stdout, stderr) = hbd_ack(&["db1", "--remove"]);
    assert_eq!((code, stdout.as_str()), (Some(0), "hbd: removed the acknowledgement of db1 (host down)\n"), "{stderr}");
    heartbeat(&udp, hbd.addr, "web1", 30.0, 3);
    wait_for("web1 up", || (get_json(hbd.http, "/api/0/hosts/web1").1["status"] == "up").then_some(()));
    let (status, answer) = send_json(&hbd, "POST", "/api/0/hosts/web1/ack", Some(ALICE), "{\"comment\": \"x\"}");
    assert_eq!(status, 409, "{answer}");
    assert_eq!(http_request(hbd.http, "GET", ack, &[]).0, 405);

    // Kept across a restart, with the state file.
    let (code, _, stderr) = hbd_ack(&["db1", "--comment", "still on it"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(hbd.stop().code(), Some(0));
    let config = hbd.config.clone();
    hbd = Hbd::start_with_config(&dir, &config);
    let (_, listed) = get_json(hbd.http, "/api/0/hosts/db1/alerts");
    let acked = &listed["alerts"][0]["acknowledged"];
    assert_eq!((&acked["by"], &acked["comment"]), (&json!("alice"), &json!("still on it")), "{listed}");
}

// ── Dependencies ─────────────────────────────────────────────────────────

/// A router and the 20 hosts behind it stop at once: one message, for the
/// router, saying 20 hosts are behind it; the hosts are unreachable, not
/// down. The router comes back, then its hosts, in time: nothing about them.
#[test]
fn a_router_down_with_20_hosts_behind_it_is_one_message() {
    let dir = TempDir::new("parents");
    let standin = Mattermost::start();
    let hbd = Hbd::start(&dir, &format!("grace: 2\nparents:\n  \"site1-*\": site1-router\n{}", standin.config()));
    let udp = client("127.0.0.1:0");
    let hosts: Vec<String> = (0..20).map(|i| format!("site1-host{i:02}")).collect();
    heartbeat(&udp, hbd.addr, "site1-router", 1.0, 0);
    for (i, name) in hosts.iter().enumerate() {
        heartbeat(&udp, hbd.addr, name, 1.0, 1 + i as u64);
    }
    let text = wait_for("the router's message", || {
        standin.texts().into_iter().find(|t| t.contains("site1-router - host down"))
    });
    assert!(text.contains("; 20 hosts behind it are unreachable"), "{text}");
    let (_, host) = get_json(hbd.http, "/api/0/hosts/site1-host07");
    assert_eq!(
        (&host["status"], &host["parents"], &host["unreachable_via"]),
        (&json!("unreachable"), &json!(["site1-router"]), &json!(["site1-router"])),
        "{host}"
    );
    let (_, router) = get_json(hbd.http, "/api/0/hosts/site1-router");
    assert_eq!((&router["status"], router.get("parents")), (&json!("down"), None), "not behind itself: {router}");
    let (_, alerts) = get_json(hbd.http, "/api/0/alerts");
    assert_eq!(alerts["count"], 1, "{alerts}");
    assert_eq!(
        (&alerts["alerts"][0]["hostname"], &alerts["alerts"][0]["behind"]),
        (&json!("site1-router"), &json!(20))
    );
    let lines = wait_for("20 host_unreachable events", || {
        let lines = events(&hbd);
        (lines.iter().filter(|l| l["type"] == "host_unreachable").count() == 20).then_some(lines)
    });
    let unreachable = lines.iter().find(|l| l["type"] == "host_unreachable").unwrap();
    assert_eq!(unreachable["via"], json!(["site1-router"]));
    assert!(!lines.iter().any(|l| l["type"] == "host_down" && l["name"] != "site1-router"), "only the router is down");

    // Back: the router first, then its hosts within their interval plus grace.
    heartbeat(&udp, hbd.addr, "site1-router", 60.0, 100);
    for (i, name) in hosts.iter().enumerate() {
        heartbeat(&udp, hbd.addr, name, 60.0, 101 + i as u64);
    }
    // A host behind nothing, sent last, goes down after the hosts' fresh
    // deadlines would have passed: its message says the time is up.
    heartbeat(&udp, hbd.addr, "sentinel", 3.0, 200);
    wait_for("the sentinel's message", || {
        standin.texts().iter().any(|t| t.contains("sentinel - host down")).then_some(())
    });
    let texts = standin.texts();
    assert_eq!(texts.iter().filter(|t| t.contains("site1-router - host down")).count(), 1, "{texts:#?}");
    assert!(texts.iter().any(|t| t.contains("RECOVERED: site1-router - host up")), "{texts:#?}");
    assert!(!texts.iter().any(|t| t.contains("site1-host")), "nothing about the hosts behind it: {texts:#?}");
    let reachable = events(&hbd).into_iter().filter(|l| l["type"] == "host_reachable").count();
    assert_eq!(reachable, 20);
    let (_, host) = get_json(hbd.http, "/api/0/hosts/site1-host07");
    assert_eq!(host["status"], "up");
    assert!(host.get("unreachable_via").is_none(), "{host}");
    let (_, _, metrics) = http_request(hbd.http, "GET", "/metrics", &[]);
    assert_promtool_clean(&metrics);
}

#[test]
fn a_cycle_of_parents_stops_start_up_naming_it() {
    let dir = TempDir::new("parents-cycle");
    let config = dir.join("hbd.yaml");
    fs::write(&config, format!("{}parents:\n  \"r?\": r2\n  r2: r1\n", base_config(dir.path(), "127.0.0.1"))).unwrap();
    let out = hbd_command().args(["--check-config", "-c"]).arg(&config).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("parents: a cycle: r2 -> r1 -> r2"), "{stderr}");
}
