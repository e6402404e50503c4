//! What operators do to a running hbd, with the real binary: API tokens
//! (reads open, writes for admins only, never from another site), forgetting
//! a host by hand (`DELETE /api/0/hosts/NAME`, `hbd forget`) and by
//! `host_expire_after`, each journaled with who did it.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use serde_json::Value;
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
