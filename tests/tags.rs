//! Tags, routes and badges with the real binaries: tags from hbc.yaml (the
//! real hbc) and from hbd.yaml in the API and `/metrics`, `?tag=`, two
//! stand-in services that each get only their tags' messages, and SVG
//! badges that are well-formed XML, follow the state and escape hostile
//! names.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use serde_json::{json, Value};
use support::standin::StandIn;
use support::*;

fn header<'a>(head: &'a [(String, String)], name: &str) -> Option<&'a str> {
    head.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// A heartbeat with `tags` (any JSON), sent until acknowledged.
fn tagged(udp: &std::net::UdpSocket, hbd: &Hbd, name: &str, interval: f64, seq: u64, tags: Value) {
    let message = json!({"ID": "HTB", "name": name, "interval": interval, "seq": seq, "tags": tags});
    send_once(udp, hbd.addr, &message);
}

/// The names of the hosts of a `/api/0/hosts` answer.
fn names(list: &Value) -> Vec<&str> {
    list["hosts"].as_array().unwrap().iter().map(|h| h["name"].as_str().unwrap()).collect()
}

/// Parses `svg` with Python's XML parser: the label and value texts, or
/// the parser's complaint.
fn parse_svg(svg: &str) -> Result<Vec<String>, String> {
    let script = "import sys, xml.etree.ElementTree as E\n\
                  root = E.fromstring(sys.stdin.buffer.read())\n\
                  assert root.tag == '{http://www.w3.org/2000/svg}svg', root.tag\n\
                  for t in root.iter('{http://www.w3.org/2000/svg}text'): print(t.text)\n";
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(svg.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect())
}

/// A badge: status, headers, and its texts (label, value) as parsed.
fn badge(hbd: &Hbd, path: &str) -> (u16, Vec<(String, String)>, Vec<String>) {
    let (status, head, body) = http_request(hbd.http, "GET", path, &[]);
    assert_eq!(header(&head, "content-type"), Some("image/svg+xml"), "{path}");
    let texts = parse_svg(&body).unwrap_or_else(|e| panic!("{path} is no well-formed SVG: {e}\n{body}"));
    // Each text twice: its shadow and itself.
    assert_eq!(texts.len(), 4, "{body}");
    (status, head, vec![texts[1].clone(), texts[3].clone()])
}

#[test]
fn tags_from_hbc_yaml_and_hbd_yaml_show_filter_and_export() {
    let dir = TempDir::new("tags");
    let hbd = Hbd::start(&dir, "tags:\n  db: ['db*', 'backup-db*']\n  eu: '*.eu'\n");
    let hbc_yaml = dir.join("hbc.yaml");
    fs::write(&hbc_yaml, format!("server: 127.0.0.1:{}\nname: web1.eu\ntags: [prod, web, prod]\n", hbd.addr.port()))
        .unwrap();
    let mut args: Vec<String> = vec!["--once".into(), "-c".into(), hbc_yaml.display().to_string()];
    for plugin in ["os_info", "cpu_monitor", "memory_monitor", "disk_monitor", "network_monitor", "filesystem_info"] {
        args.extend(["--disable-plugin".to_string(), plugin.to_string()]);
    }
    let out = Command::new(env!("CARGO_BIN_EXE_hbc")).args(&args).env("HOME", dir.path()).output().unwrap();
    assert!(out.status.success(), "hbc: {}", String::from_utf8_lossy(&out.stderr));
    // Bad tags in hbc.yaml are named and stop hbc.
    fs::write(&hbc_yaml, "server: 127.0.0.1:9\nname: x\ntags: ['<b>db</b>']\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hbc")).args(&args).env("HOME", dir.path()).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("tags: `<b>db</b>` is not a tag"));

    let udp = client("127.0.0.1:0");
    tagged(&udp, &hbd, "db1", 30.0, 1, json!(null));
    // Hostile tags are passed over, the heartbeat counts.
    tagged(&udp, &hbd, "backup-db2", 30.0, 2, json!(["<script>", "ok-tag", 7, "A"]));
    heartbeat(&udp, hbd.addr, "plain", 30.0, 3);
    // ACKed by the udp thread: core may not have taken the last one yet.
    wait_for("every host in the list", || (names(&get_json(hbd.http, "/api/0/hosts").1).len() == 4).then_some(()));

    let (_, web) = get_json(hbd.http, "/api/0/hosts/web1.eu");
    assert_eq!(web["tags"], json!(["eu", "prod", "web"]), "hbc's and hbd.yaml's, once each: {web}");
    let (_, db2) = get_json(hbd.http, "/api/0/hosts/backup-db2");
    assert_eq!(db2["tags"], json!(["db", "ok-tag"]));
    let (status, all) = get_json(hbd.http, "/api/0/hosts");
    assert_eq!(status, 200);
    assert_eq!(names(&all), ["backup-db2", "db1", "plain", "web1.eu"]);
    let plain = &all["hosts"][2];
    assert!(plain.get("tags").is_none(), "a host without tags looks as before: {plain}");

    let (status, db) = get_json(hbd.http, "/api/0/hosts?tag=db");
    assert_eq!((status, names(&db)), (200, vec!["backup-db2", "db1"]));
    assert_eq!(db["count"], 2);
    let (_, either) = get_json(hbd.http, "/api/0/hosts?tag=web&tag=ok-tag");
    assert_eq!(names(&either), ["backup-db2", "web1.eu"]);
    let (_, none) = get_json(hbd.http, "/api/0/hosts?tag=nosuch");
    assert_eq!(names(&none), Vec::<&str>::new());
    let (status, bad) = get_json(hbd.http, "/api/0/hosts?tag=%3Cb%3E");
    assert_eq!(status, 400, "{bad}");

    // The WebSocket shows them too: in the snapshot and in each heartbeat.
    let stream = std::net::TcpStream::connect(hbd.ws).unwrap();
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    let (mut ws, _) = tungstenite::client(format!("ws://{}/", hbd.ws), stream).expect("websocket handshake");
    let read = |ws: &mut tungstenite::WebSocket<std::net::TcpStream>| -> Value {
        loop {
            if let tungstenite::Message::Text(text) = ws.read().expect("a websocket message") {
                return serde_json::from_str(&text).unwrap();
            }
        }
    };
    let snapshot = read(&mut ws);
    assert_eq!(snapshot["type"], "snapshot");
    let db1 = snapshot["hosts"].as_array().unwrap().iter().find(|h| h["name"] == "db1").unwrap().clone();
    assert_eq!(db1["tags"], json!(["db"]));
    tagged(&udp, &hbd, "db1", 30.0, 4, json!(["new"]));
    let update = loop {
        let m = read(&mut ws);
        if m["type"] == "heartbeat" && m["host"]["name"] == "db1" {
            break m;
        }
    };
    assert_eq!(update["host"]["tags"], json!(["db", "new"]));

    let (_, _, metrics) = http_request(hbd.http, "GET", "/metrics", &[]);
    for line in [
        "hbd_host_tags{host=\"web1.eu\",tag=\"prod\"} 1",
        "hbd_host_tags{host=\"db1\",tag=\"db\"} 1",
        "hbd_host_tags{host=\"backup-db2\",tag=\"ok-tag\"} 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
    assert_promtool_clean(&metrics);
}

#[test]
fn each_service_gets_only_its_tags_messages() {
    let dir = TempDir::new("routes");
    let (db_team, web_team) = (StandIn::start(false), StandIn::start(false));
    let config = format!(
        "grace: 0\nnotify_group_window: 2\ntags:\n  db: 'db*'\n\
         pushover: {{url: 'http://{}/1/messages.json', token: azGDORePK8gMaC0QOYAMyEEuzJnyUi, user: uQiRzpo4DXghDmr9QzzfQu27cmVRsG, tags: [db], timeout: 2}}\n\
         mattermost: {{webhook_url: 'http://{}/hooks/xyz', tags: [web], timeout: 2}}\n",
        db_team.addr, web_team.addr
    );
    let hbd = Hbd::start(&dir, &config);
    let udp = client("127.0.0.1:0");
    // db1 by hbd.yaml, backup by its client, web1 by its client, other by none.
    tagged(&udp, &hbd, "db1", 1.0, 1, json!([]));
    tagged(&udp, &hbd, "backup", 1.0, 2, json!(["db"]));
    tagged(&udp, &hbd, "web1", 1.0, 3, json!(["web"]));
    tagged(&udp, &hbd, "other", 1.0, 4, json!([]));
    let delivered = |s: &StandIn, service: &str| s.delivered(service);
    let db = wait_for("the db team's message", || delivered(&db_team, "pushover").into_iter().next());
    let web = wait_for("the web team's message", || delivered(&web_team, "mattermost").into_iter().next());
    let db_text = db["message"].as_str().unwrap();
    assert!(db_text.contains("db1") && db_text.contains("backup"), "{db_text}");
    assert!(!db_text.contains("web1") && !db_text.contains("other"), "{db_text}");
    let web_text = web["text"].as_str().unwrap();
    assert!(web_text.contains("web1"), "{web_text}");
    assert!(!web_text.contains("db1") && !web_text.contains("backup") && !web_text.contains("other"), "{web_text}");
    // The alerts carry their hosts' tags.
    let (_, alerts) = get_json(hbd.http, "/api/0/alerts");
    let tags_of = |host: &str| {
        alerts["alerts"].as_array().unwrap().iter().find(|a| a["hostname"] == host).map(|a| a["tags"].clone())
    };
    assert_eq!(tags_of("backup"), Some(json!(["db"])), "{alerts}");
    assert_eq!(tags_of("other"), Some(Value::Null), "no tags, no member: {alerts}");
    // Nothing else went to either, nor to the other's service.
    hbd.wait_journal("both deliveries", |l| l["type"] == "notification" && l["service"] == "mattermost");
    assert_eq!(delivered(&db_team, "pushover").len(), 1);
    assert_eq!(delivered(&web_team, "mattermost").len(), 1);
    assert!(delivered(&db_team, "mattermost").is_empty() && delivered(&web_team, "pushover").is_empty());
    db_team.assert_no_violations();
    web_team.assert_no_violations();

    // A bad tag in a service's route is named.
    fs::write(dir.join("bad.yaml"), "mattermost: {webhook_url: 'http://127.0.0.1:9/hooks/x', tags: ['DB']}\n").unwrap();
    let out = hbd_command().args(["--check-config", "-c"]).arg(dir.join("bad.yaml")).output().unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("mattermost.tags: `DB` is not a tag"));
}

#[test]
fn badges_are_svg_follow_the_state_and_escape_hostile_names() {
    let dir = TempDir::new("badges");
    let hbd = Hbd::start(
        &dir,
        "grace: 0\ntags:\n  db: 'db*'\nthresholds:\n  cpu_monitor:\n    cpu_percent: {warning: 80, critical: 90}\n",
    );
    let udp = client("127.0.0.1:0");
    tagged(&udp, &hbd, "db1", 1.0, 1, json!([]));
    tagged(&udp, &hbd, "db2", 600.0, 2, json!([]));

    // The ACK comes from the udp thread; core takes the heartbeat a moment later.
    let (status, head, texts) = wait_for("db2's badge", || Some(badge(&hbd, "/badge/db2.svg")).filter(|b| b.0 == 200));
    assert_eq!((status, texts), (200, vec!["db2".to_string(), "up".to_string()]));
    assert_eq!(header(&head, "cache-control"), Some("max-age=30"));
    let etag = header(&head, "etag").expect("an ETag").to_string();
    let (status, _, body) = http_request(hbd.http, "GET", "/badge/db2.svg", &[("If-None-Match", &etag)]);
    assert_eq!((status, body.as_str()), (304, ""));

    // db1 stops: its badge turns, and the tag's counts it.
    let (_, _, texts) = wait_for("db1's badge to say down", || {
        let b = badge(&hbd, "/badge/db1.svg");
        (b.2[1] == "down").then_some(b)
    });
    assert_eq!(texts[0], "db1");
    let (status, _, texts) = badge(&hbd, "/badge/tag/db.svg");
    assert_eq!((status, texts), (200, vec!["db".to_string(), "1/2 up".to_string()]));
    tagged(&udp, &hbd, "db1", 600.0, 3, json!([]));
    wait_for("the tag's badge to count db1 up again", || {
        (badge(&hbd, "/badge/tag/db.svg").2[1] == "2/2 up").then_some(())
    });

    // Up, but with a CRITICAL alert (as a job whose last run failed): said so.
    let hot = json!({"ID": "HTB", "name": "hot", "interval": 600, "seq": 9,
        "plugins": {"cpu_monitor": {"kind": "monitor", "at": 1.0, "data": {"cpu_percent": 96.5}}}});
    send_once(&udp, hbd.addr, &hot);
    let (status, _, texts) = wait_for("hot's badge to say critical", || {
        let b = badge(&hbd, "/badge/hot.svg");
        (b.2[1] == "critical").then_some(b)
    });
    assert_eq!((status, texts[0].as_str()), (200, "hot"));

    // Unknown host or tag: an "unknown" badge with 404.
    let (status, _, texts) = badge(&hbd, "/badge/nosuch.svg");
    assert_eq!((status, texts), (404, vec!["nosuch".to_string(), "unknown".to_string()]));
    let (status, _, texts) = badge(&hbd, "/badge/tag/nosuch.svg");
    assert_eq!((status, texts[1].as_str()), (404, "unknown"));
    // Hostile names are text in well-formed XML.
    for (path, label) in [
        ("/badge/%3Cscript%3Ealert(1)%3C%2Fscript%3E.svg", "<script>alert(1)</script>"),
        ("/badge/a%26b%22%27%3E%01.svg", "a&b\"'>"),
        ("/badge/tag/%3C%21--x.svg", "<!--x"),
    ] {
        let (status, _, body) = http_request(hbd.http, "GET", path, &[]);
        assert_eq!(status, 404);
        assert!(!body.contains("<script") && !body.contains("<!--"), "{body}");
        let texts = parse_svg(&body).unwrap_or_else(|e| panic!("{path}: {e}\n{body}"));
        assert_eq!(texts[1], label);
    }
    let (status, _, _) = http_request(hbd.http, "GET", "/badge/db1.png", &[]);
    assert_eq!(status, 404);
}

#[test]
fn badges_need_a_token_when_reads_do() {
    let dir = TempDir::new("badges-token");
    let tokens = dir.join("tokens");
    fs::write(&tokens, "bob read bob-reads-0123456789abcdef\n").unwrap();
    fs::set_permissions(&tokens, fs::Permissions::from_mode(0o600)).unwrap();
    let hbd = Hbd::start(&dir, &format!("api_tokens_file: {}\napi_reads_need_token: true\n", tokens.display()));
    let (status, _, _) = http_request(hbd.http, "GET", "/badge/x.svg", &[]);
    assert_eq!(status, 401);
    let (status, _, body) =
        http_request(hbd.http, "GET", "/badge/x.svg", &[("Authorization", "Bearer bob-reads-0123456789abcdef")]);
    assert_eq!(status, 404);
    assert!(parse_svg(&body).is_ok());
}
