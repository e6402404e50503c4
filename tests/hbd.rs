//! End-to-end tests of the real `hbd` binary over real loopback sockets.

mod support;

use std::fs;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hbd::wire::auth::{HostPattern, Key, Keyring};
use serde_json::{json, Value};
use support::*;

fn is_message_from(v: &Value, name: &str) -> bool {
    v["message"]["name"] == name
}

/// In "… 12 accepted, …", the number before `word`.
fn number_before(line: &str, word: &str) -> usize {
    let head = &line[..line.find(word).unwrap_or_else(|| panic!("{word:?} in {line:?}"))];
    head.rsplit(' ').next().and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("number before {word:?} in {line:?}"))
}

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as u64
}

// ---------------------------------------------------------------- command line

fn run_hbd(args: &[&str], dir: &TempDir) -> (i32, String, String) {
    let out =
        Command::new(hbd_bin()).args(args).current_dir(dir.path()).env("HOME", dir.path()).output().expect("run hbd");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn check_config_without_a_file_prints_the_defaults() {
    let dir = TempDir::new("defaults");
    let (code, stdout, stderr) = run_hbd(&["--check-config"], &dir);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("# effective configuration from built-in defaults"), "{stdout}");
    assert!(stdout.contains("hb_port: 50003"), "{stdout}");
    assert!(stdout.contains("journal_max_size: 104857600"), "{stdout}");
    assert!(stderr.contains("configuration OK"), "{stderr}");
}

#[test]
fn check_config_reads_home_hb_yaml_like_the_python_version() {
    let dir = TempDir::new("home");
    fs::write(dir.join(".hb.yaml"), "hb_port: 6001\n").unwrap();
    let (code, stdout, _) = run_hbd(&["--check-config"], &dir);
    assert_eq!(code, 0);
    assert!(stdout.contains("hb_port: 6001"), "{stdout}");
}

#[test]
fn configuration_errors_exit_78_and_name_what_is_wrong() {
    let dir = TempDir::new("badconfig");
    let cases = [
        ("hb_prot: 1\n", "unknown key `hb_prot` (did you mean `hb_port`?)"),
        ("grace: soon\n", "grace: invalid type"),
        ("hb_port: 70000\n", "hb_port: invalid value"),
        ("hb_host: not-an-ip\n", "hb_host: `not-an-ip` is not an IP address"),
        ("pushsrv: pushbullet\n", "pushsrv: `pushbullet` is not one of pushover, mattermost, all, none"),
        ("keys: [{id: k, secret: short}]\n", "keys[0]: secret of key `k` is shorter than 16 bytes"),
    ];
    for (yaml, expected) in cases {
        let path = dir.join("bad.yaml");
        fs::write(&path, yaml).unwrap();
        let (code, _, stderr) = run_hbd(&["--check-config", "-c", path.to_str().unwrap()], &dir);
        assert_eq!(code, 78, "{yaml:?}: {stderr}");
        assert!(stderr.contains(expected), "{yaml:?}: {stderr}");
        assert!(stderr.contains("bad.yaml"), "names the file: {stderr}");
        let (code, _, _) = run_hbd(&["-f", "-c", path.to_str().unwrap()], &dir);
        assert_eq!(code, 78, "start-up refuses {yaml:?} too");
    }
    let (code, _, stderr) = run_hbd(&["-c", "/nonexistent/hbd.yaml"], &dir);
    assert_eq!(code, 78);
    assert!(stderr.contains("/nonexistent/hbd.yaml: No such file"), "{stderr}");
}

/// Issue 7: a Python user's file with several mistakes gets every one of them
/// in one run, in plain words, each printed once; their YAML 1.1 booleans
/// and `hbd_host: localhost` work.
#[test]
fn every_config_problem_in_one_run_each_once() {
    let dir = TempDir::new("allproblems");
    let path = dir.join("bad.yaml");
    fs::write(&path, "hb_prot: 1\ngrace: soon\nhb_port: 70000\ninterval: 0\njournal_enabled: maybe\n").unwrap();
    let (code, _, stderr) = run_hbd(&["-f", "-c", path.to_str().unwrap()], &dir);
    assert_eq!(code, 78, "{stderr}");
    for expected in [
        "bad.yaml: unknown key `hb_prot` (did you mean `hb_port`?)",
        "bad.yaml: grace: invalid type: string \"soon\", expected a number",
        "bad.yaml: hb_port: invalid value: integer `70000`, expected a whole number from 0 to 65535",
        "bad.yaml: interval: 0 is not a number of seconds",
        "bad.yaml: journal_enabled: invalid value: string \"maybe\", expected true or false",
    ] {
        assert_eq!(stderr.matches(expected).count(), 1, "{expected:?} once in:\n{stderr}");
    }
    assert!(!stderr.contains("u16") && !stderr.contains("f64"), "no Rust type names: {stderr}");

    fs::write(&path, "journal_enabled: no\nhbd_host: localhost\n").unwrap();
    let (code, stdout, stderr) = run_hbd(&["--check-config", "-c", path.to_str().unwrap()], &dir);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("journal_enabled: false") && stdout.contains("hbd_host: localhost"), "{stdout}");
}

#[test]
fn usage_errors_exit_2_and_help_and_version_exit_0() {
    let dir = TempDir::new("usage");
    for (args, says) in [
        (&["--bogus"][..], "hbd: unknown option --bogus\n"),
        (&["-c"], "hbd: option -c needs a value\n"),
        (&["extra"], "hbd: unknown subcommand extra (hbd takes: forget, ack, silence)\n"),
        (&["ack"], "hbd: ack needs a HOST or HOST/PLUGIN/METRIC_PATH\n"),
        (&["ack", "db1", "--comment", "x", "--remove"], "hbd: ack takes --comment TEXT or --remove, not both\n"),
        (&["forget", "db1", "--comment", "x"], "hbd: --comment goes with ack and silence add\n"),
        (&["forget", "db1", "--remove"], "hbd: --remove goes with ack\n"),
        (&["forget"], "hbd: forget needs a HOST\n"),
        (&["silence"], "hbd: silence needs add, list or expire\n"),
        (&["silence", "mute"], "hbd: unknown silence command mute (add, list or expire)\n"),
        (&["silence", "add", "--for", "1h", "--comment", "c"], "hbd: silence add needs --host PATTERN\n"),
        (&["silence", "add", "--host", "a", "--for", "1h"], "hbd: silence add needs --comment TEXT (say why)\n"),
        (
            &["silence", "add", "--host", "a", "--comment", "c"],
            "hbd: silence add needs --for DURATION or --until TIME (one of them)\n",
        ),
        (
            &["silence", "add", "--host", "a", "--metric", "m", "--for", "1h", "--comment", "c"],
            "hbd: --metric needs --plugin\n",
        ),
        (&["silence", "expire"], "hbd: silence expire needs an ID (see hbd silence list)\n"),
        (
            &["silence", "list", "--host", "a"],
            "hbd: --host, --plugin, --metric, --for, --until and --start go with silence add\n",
        ),
        (&["forget", "--for", "1h", "a"], "hbd: --host, --plugin"),
        (&["forget", "a", "b"], "hbd: unexpected argument b\n"),
    ] {
        let (code, _, stderr) = run_hbd(args, &dir);
        assert_eq!(code, 2, "{args:?}");
        assert!(stderr.starts_with(says), "{args:?}: {stderr}");
        assert!(stderr.contains("usage: hbd") && stderr.contains("Run 'hbd --help' for every option."), "{stderr}");
    }
    // hbc the same way, and a value that does not parse names its option.
    for (args, says) in [
        (&["--bogus"][..], "hbc: unknown option --bogus\n"),
        (&["-p", "abc", "-s", "x"], "hbc: --port abc: not a port number (1 to 65535)\n"),
        (&["--interval=soon"], "hbc: --interval soon: not a number of seconds\n"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_hbc")).args(args).env("HOME", dir.path()).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            stderr.starts_with(says) && stderr.contains("Run 'hbc --help' for every option."),
            "{args:?}: {stderr}"
        );
    }
    let (code, stdout, _) = run_hbd(&["--help"], &dir);
    assert_eq!(code, 0);
    assert!(stdout.starts_with("usage: hbd [-c|--config FILE] [-f|--foreground] [-v|--verbose]... [--check-config]"));
    // --config=FILE and bundled -vv work as users type them.
    fs::write(dir.join("eq.yaml"), "hb_port: 6002\n").unwrap();
    let (code, stdout, stderr) = run_hbd(&["--check-config", "--config=eq.yaml", "-vv"], &dir);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("hb_port: 6002"), "{stdout}");
    let (code, stdout, _) = run_hbd(&["-V"], &dir);
    assert_eq!((code, stdout.trim()), (0, format!("hbd {}", env!("CARGO_PKG_VERSION")).as_str()));
}

#[test]
fn a_port_in_use_is_a_start_up_error_naming_the_address() {
    let dir = TempDir::new("inuse");
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let config = dir.join("hbd.yaml");
    fs::write(
        &config,
        format!("{}hb_port: {port}\n", base_config(dir.path(), "127.0.0.1").replace("hb_port: 0\n", "")),
    )
    .unwrap();
    let (code, _, stderr) = run_hbd(&["-f", "-c", config.to_str().unwrap()], &dir);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains(&format!("bind udp 127.0.0.1:{port}")), "{stderr}");
}

// ---------------------------------------------------------------- heartbeats and state

#[test]
fn host_goes_up_down_up_and_moves() {
    let dir = TempDir::new("updown");
    let mut hbd = Hbd::start(&dir, "grace: 0.2\n");
    let client = client("127.0.0.1:0");
    let ack = heartbeat(&client, hbd.addr, "Web-1", 0.5, 1);
    assert_eq!(ack, json!({"ID": "ACK", "name": "web-1", "seq": 1}));
    hbd.wait_journal("host_new", |v| event_of(v, "host_new", "web-1").is_some());
    let down = hbd.wait_journal("host_down", |v| event_of(v, "host_down", "web-1").is_some());
    assert!(down["silent_for"].as_f64().unwrap() > 0.7, "{down}");
    hbd.wait_log("core: host web-1 is down");

    heartbeat(&client, hbd.addr, "web-1", 30.0, 2);
    let up = hbd.wait_journal("host_up", |v| event_of(v, "host_up", "web-1").is_some());
    assert_eq!(up["address"], "127.0.0.1");

    let elsewhere = support::client("127.0.0.2:0");
    heartbeat(&elsewhere, hbd.addr, "web-1", 30.0, 3);
    let moved = hbd.wait_journal("address_changed", |v| event_of(v, "address_changed", "web-1").is_some());
    assert_eq!((moved["old_address"].as_str(), moved["address"].as_str()), (Some("127.0.0.1"), Some("127.0.0.2")));

    assert!(hbd.stop().success());
    let state = hbd.state();
    let host = &state["hosts"][0];
    assert_eq!(host["name"], "web-1");
    assert_eq!(host["address"], "127.0.0.2");
    assert_eq!(host["count"], 3);
    assert_eq!(host["status"], "up");
    assert_eq!(host["interval"], 30.0);
    assert!(host["first_seen"].as_f64() < host["last_seen"].as_f64());
}

#[test]
fn ipv6_heartbeats_are_received() {
    let dir = TempDir::new("ipv6");
    let mut hbd = Hbd::start_on(&dir, "::1", "");
    assert!(hbd.addr.is_ipv6());
    let client = client("[::1]:0");
    heartbeat(&client, hbd.addr, "v6host", 30.0, 1);
    let line = hbd.wait_journal("message", |v| is_message_from(v, "v6host"));
    assert_eq!(line["source_ip"], "::1");
    assert!(hbd.stop().success());
}

#[test]
fn a_python_one_liner_can_send_plain_and_zlib_heartbeats() {
    let dir = TempDir::new("python");
    let mut hbd = Hbd::start(&dir, "");
    let script = format!(
        "import socket,zlib,json; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.settimeout(5); \
         m=json.dumps({{'ID':'HTB','name':'py-plain','interval':30}}).encode(); \
         s.sendto(m,('127.0.0.1',{port})); print(s.recv(512).decode()); \
         s.sendto(zlib.compress(m.replace(b'py-plain',b'py-zlib')),('127.0.0.1',{port})); print(s.recv(512).decode())",
        port = hbd.addr.port()
    );
    let out =
        Command::new("python3").args(["-c", &script]).output().expect("python3 is installed (tests/run installs it)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(r#"{"ID":"ACK","name":"py-plain"}"#) && stdout.contains(r#""name":"py-zlib""#), "{stdout}");
    let line = hbd.wait_journal("zlib message", |v| is_message_from(v, "py-zlib"));
    assert_eq!(line["message"], json!({"ID": "HTB", "name": "py-zlib", "interval": 30}));
    assert!(hbd.stop().success());
}

#[test]
fn state_survives_a_restart_and_a_corrupt_state_file_is_moved_aside() {
    let dir = TempDir::new("restart");
    let mut hbd = Hbd::start(&dir, "");
    let client = client("127.0.0.1:0");
    heartbeat(&client, hbd.addr, "keep-me", 30.0, 1);
    heartbeat(&client, hbd.addr, "and-me", 30.0, 2);
    assert!(hbd.stop().success());

    let mut hbd = Hbd::start(&dir, "");
    hbd.wait_log("state: restored 2 hosts");
    heartbeat(&client, hbd.addr, "keep-me", 30.0, 3);
    hbd.wait_journal("third heartbeat", |v| v["message"]["seq"] == 3);
    assert!(hbd.stop().success());
    let new_events = hbd.journal().iter().filter(|v| v["type"] == "host_new").count();
    assert_eq!(new_events, 2, "a restored host is not new again");
    let state = hbd.state();
    let keep = state["hosts"].as_array().unwrap().iter().find(|h| h["name"] == "keep-me").unwrap().clone();
    assert_eq!(keep["count"], 2);

    fs::write(dir.join("state.json"), b"{\"version\":1,\"hosts\":[{\"name\":").unwrap();
    let mut hbd = Hbd::start(&dir, "");
    let warning = hbd.wait_log("is unusable");
    assert!(warning.contains("state.json.corrupt-"), "{warning}");
    heartbeat(&client, hbd.addr, "fresh", 30.0, 4);
    assert!(hbd.stop().success());
    assert_eq!(hbd.state()["hosts"].as_array().unwrap().len(), 1);
    let aside = fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("state.json.corrupt-"))
        .count();
    assert_eq!(aside, 1);
}

/// Issue 11: state files of format 1 (hbd before the compact store, at
/// bb0faa3) and of format 2 (the store with its first time encoding, at
/// b2edc03), written by those versions (tests/fixtures/state-gen.py), are
/// converted on the first start; the API answers exactly what that hbd
/// answered, and again after the converted store was saved (format 3) and
/// read back.
#[test]
fn older_state_files_are_converted_and_the_api_answers_the_same() {
    let fixtures = [
        (1, include_str!("fixtures/state-v1.json"), include_str!("fixtures/state-v1-api.json")),
        (2, include_str!("fixtures/state-v2.json"), include_str!("fixtures/state-v2-api.json")),
    ];
    for (version, state, api) in fixtures {
        let dir = TempDir::new(&format!("upgrade-v{version}"));
        fs::write(dir.join("state.json"), state).unwrap();
        let expected: std::collections::BTreeMap<String, Value> = serde_json::from_str(api).unwrap();
        assert!(expected.len() > 10, "every plugin of both hosts");
        for round in ["converted", "saved and read back"] {
            let mut hbd = Hbd::start(&dir, "plugin_history: 5\n");
            hbd.wait_log("state: restored 2 hosts");
            for (path, want) in &expected {
                let (status, got) = get_json(hbd.http, path);
                assert_eq!((status, &got), (200, want), "format {version}, {round}: {path}");
            }
            assert!(hbd.stop().success());
            assert_eq!(hbd.state()["version"], 3, "format {version}, {round}");
        }
    }
}

#[test]
fn state_is_saved_periodically_while_running() {
    let dir = TempDir::new("periodic");
    let hbd = Hbd::start(&dir, "state_save_interval: 1\n");
    let client = client("127.0.0.1:0");
    heartbeat(&client, hbd.addr, "saved", 30.0, 1);
    wait_for("periodic save", || {
        let text = fs::read_to_string(dir.join("state.json")).ok()?;
        text.contains("\"saved\"").then_some(())
    });
}

// ---------------------------------------------------------------- journal

#[test]
fn journal_rotation_loses_and_cuts_no_line() {
    let dir = TempDir::new("rotate");
    let mut hbd = Hbd::start(&dir, "journal_max_size: 3000\njournal_max_backups: 200\n");
    let client = client("127.0.0.1:0");
    for seq in 0..300 {
        heartbeat(&client, hbd.addr, &format!("host-{}", seq % 7), 30.0, seq);
    }
    assert!(hbd.stop().success());
    let summary = hbd.wait_log("udp: stopped after");
    let accepted = number_before(&summary, " accepted");
    let files: Vec<_> = fs::read_dir(hbd.journal_dir()).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(files.len() > 10, "rotated into {} files", files.len());
    for file in &files {
        let text = fs::read_to_string(file).unwrap();
        assert!(text.len() <= 3000, "{} has {} bytes", file.display(), text.len());
        assert!(text.ends_with('\n'), "{} ends mid-line", file.display());
    }
    let lines = hbd.journal();
    let messages: Vec<&Value> = lines.iter().filter(|v| v.get("message").is_some()).collect();
    assert_eq!(messages.len(), accepted, "every accepted datagram is journaled once");
    for seq in 0..300 {
        assert!(messages.iter().any(|v| v["message"]["seq"] == seq), "seq {seq} missing");
    }
    let seqs: Vec<u64> = messages.iter().filter_map(|v| v["message"]["seq"].as_u64()).collect();
    assert!(seqs.windows(2).all(|w| w[0] <= w[1]), "files in rotation order hold lines in arrival order");
    let line = messages[0];
    for key in ["timestamp", "datetime", "source_ip", "source_port", "message"] {
        assert!(line.get(key).is_some(), "{key} in {line}");
    }
}

/// The Python README's journal one-liners, verbatim but for the path.
const PYTHON_README_ONE_LINERS: [&str; 3] = [
    "tail -100 /var/log/heartbeat/messages.journal | jq .",
    "cat /var/log/heartbeat/messages.journal | jq -r '.message.ID' | sort | uniq -c",
    "cat /var/log/heartbeat/messages.journal | jq 'select(.message.name == \"webserver1\")'",
];

/// Runs `script` with `sh -c`; its standard output, after checking that it
/// succeeded and wrote nothing to standard error.
fn sh(script: &str) -> String {
    let out = Command::new("sh").args(["-c", script]).output().expect("sh");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.is_empty(), "{script}: {}: {stderr}", out.status);
    String::from_utf8(out.stdout).expect("jq writes UTF-8")
}

/// jq's output of a stream of JSON texts.
fn json_stream(text: &str) -> Vec<Value> {
    serde_json::Deserializer::from_str(text).into_iter::<Value>().map(|v| v.expect("jq writes JSON")).collect()
}

/// Issue 20: with alerts firing and a host going down, the messages journal
/// still gives the Python hbd's answers to its README's one-liners (no
/// `null`, no "Cannot index string"), and the events are in their own file.
#[test]
fn the_python_versions_jq_one_liners_work_on_the_journal_whatever_happened() {
    let dir = TempDir::new("jq");
    let hbd = Hbd::start(&dir, "grace: 0\nthresholds:\n  cpu_monitor:\n    cpu_percent: {warning: 80, critical: 90}\n");
    let udp = client("127.0.0.1:0");
    let at = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
    let cpu = |percent: f64| json!({"cpu_monitor": {"kind": "monitor", "at": at, "data": {"cpu_percent": percent}}});
    let sent = [
        json!({"ID": "HTB", "name": "webserver1", "interval": 30, "seq": 1, "plugins": cpu(50.0)}),
        json!({"ID": "HTB", "name": "db1", "interval": 30, "seq": 2}),
        // webserver1's CPU crosses the critical threshold: an alert fires.
        json!({"ID": "HTB", "name": "webserver1", "interval": 30, "seq": 3, "plugins": cpu(95.0)}),
        json!({"ID": "PLG", "name": "webserver1", "seq": 4, "plugins": cpu(96.0)}),
        // flaky falls silent after its interval of 1 s: host_down and its alert.
        json!({"ID": "HTB", "name": "flaky", "interval": 1, "seq": 5}),
        json!({"ID": "HTB", "name": "db1", "interval": 30, "seq": 6}),
        json!({"ID": "HTB", "name": "webserver1", "interval": 30, "seq": 7}),
    ];
    for message in &sent {
        send_once(&udp, hbd.addr, message);
    }
    let (messages, events) = (hbd.messages_file(), hbd.events_file());
    let lines_of = |path: &std::path::Path| {
        let text = fs::read_to_string(path).unwrap_or_default();
        text.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).collect::<Vec<_>>()
    };
    let fired = |name: &str, kind: &str| {
        let (name, kind) = (name.to_string(), kind.to_string());
        move |l: &Value| l["type"] == kind && l["name"] == name
    };
    wait_for("every event in the events file", || {
        let lines = lines_of(&events);
        let has = |check: &dyn Fn(&Value) -> bool| lines.iter().any(check);
        let alert = |name: &str, level: &str| {
            let (name, level) = (name.to_string(), level.to_string());
            move |l: &Value| l["type"] == "alert" && l["name"] == name && l["level"] == level
        };
        (has(&fired("webserver1", "host_new"))
            && has(&alert("webserver1", "CRITICAL"))
            && has(&fired("flaky", "host_down"))
            && has(&alert("flaky", "CRITICAL")))
        .then_some(())
    });
    wait_for("every message in the messages file", || (lines_of(&messages).len() == sent.len()).then_some(()));

    let path = messages.to_str().unwrap();
    let [view, count, select] =
        PYTHON_README_ONE_LINERS.map(|l| l.replace("/var/log/heartbeat/messages.journal", path));
    // View recent messages: every line is a received message, in order.
    let viewed = json_stream(&sh(&view));
    let seqs: Vec<&Value> = viewed.iter().map(|v| &v["message"]["seq"]).collect();
    assert_eq!(seqs, sent.iter().map(|m| &m["seq"]).collect::<Vec<_>>(), "{viewed:?}");
    for line in &viewed {
        let keys: Vec<&str> = line.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 5, "the Python shape: {line}");
        for key in ["timestamp", "datetime", "source_ip", "source_port", "message"] {
            assert!(keys.contains(&key), "{key} in {line}");
        }
        assert_eq!(line["source_ip"], "127.0.0.1");
    }
    // Count messages by type: exactly what was sent, no null.
    let counts = sh(&count);
    let counts: Vec<Vec<&str>> = counts.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(counts, [vec!["6", "HTB"], vec!["1", "PLG"]]);
    // Filter by hostname: webserver1's four messages, whole.
    let selected = json_stream(&sh(&select));
    assert_eq!(selected.iter().map(|v| v["message"]["seq"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 3, 4, 7]);
    assert!(selected.iter().all(|v| v["message"]["name"] == "webserver1"));
    assert_eq!(selected[1]["message"]["plugins"]["cpu_monitor"]["data"]["cpu_percent"], 95.0);

    // The events file, with the examples of README.md and hbd(8).
    let events = events.to_str().unwrap();
    let texts = sh(&format!("jq -r 'select(.type == \"alert\") | .text' {events}"));
    assert!(texts.lines().any(|t| t == "CRITICAL: webserver1 - cpu_monitor.cpu_percent = 95.0"), "{texts}");
    assert!(texts.lines().any(|t| t.starts_with("CRITICAL: flaky - host down (silent for ")), "{texts}");
    assert!(!texts.contains("null"), "{texts}");
    let down = sh(&format!("jq -r 'select(.type == \"host_down\") | .name' {events}"));
    assert_eq!(down, "flaky\n");
    let types = sh(&format!("jq -r '.type' {events} | sort | uniq -c"));
    assert!(!types.contains("null"), "every event line has a type: {types}");
    let messages_in_events = sh(&format!("jq -c 'select(has(\"message\"))' {events}"));
    assert_eq!(messages_in_events, "", "no event line has a `message`");
}

#[test]
fn sigterm_flushes_the_journal_and_sighup_reopens_it() {
    let dir = TempDir::new("signals");
    let mut hbd = Hbd::start(&dir, "");
    let client = client("127.0.0.1:0");
    heartbeat(&client, hbd.addr, "before", 30.0, 1);
    let journal = hbd.journal_dir().join("messages.journal");
    hbd.wait_journal("first line", |v| is_message_from(v, "before"));
    fs::rename(&journal, hbd.journal_dir().join("rotated-away")).unwrap();
    hbd.signal(libc::SIGHUP);
    hbd.wait_log("journal: reopened");
    heartbeat(&client, hbd.addr, "after", 30.0, 2);
    let status = hbd.stop();
    assert!(status.success(), "{status}");
    let text = fs::read_to_string(&journal).unwrap();
    assert!(text.contains("\"name\":\"after\""), "line written right before SIGTERM is flushed: {text}");
    assert!(!text.contains("\"name\":\"before\""));
    assert!(hbd.log().contains("hbd stopped"));
}

// ---------------------------------------------------------------- bad input

#[test]
fn bad_input_is_counted_logged_and_the_next_good_datagram_accepted() {
    let dir = TempDir::new("badinput");
    let mut hbd = Hbd::start(&dir, "max_message_size: 4096\n");
    let client = client("127.0.0.1:0");
    let bomb = zlib(&vec![b' '; 8 << 20]);
    let good = br#"{"ID":"HTB","name":"a","pad":"0123456789012345678901234567890123456789"}"#;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("not_json", b"hello".to_vec()),
        ("not_json", Vec::new()),
        ("bad_json", br#"{"ID":"HTB","name":"a""#.to_vec()),
        ("not_utf8", b"{\"ID\":\"HTB\",\"name\":\"a\",\"x\":\"\xff\xfe\"}".to_vec()),
        ("bad_zlib", zlib(good)[..20].to_vec()),
        ("too_large", bomb),
        ("too_large", vec![b'{'; 5000]),
        ("bad_field", br#"{"ID":"HTB","interval":30}"#.to_vec()),
        ("bad_field", br#"{"ID":"HTB","name":"a","interval":"soon"}"#.to_vec()),
        ("bad_name", br#"{"ID":"HTB","name":"x;update add evil.example.com 1 A 1.2.3.4"}"#.to_vec()),
        ("bad_name", br#"{"ID":"HTB","name":"<script>alert(1)</script>"}"#.to_vec()),
        ("bad_name", br#"{"ID":"HTB","name":"../../etc/passwd"}"#.to_vec()),
        ("unknown_id", br#"{"ID":"NOPE","name":"a"}"#.to_vec()),
        ("bad_interval", br#"{"ID":"HTB","name":"a","interval":-1}"#.to_vec()),
        ("unexpected_signature", b"HBS1\x02k1aaaaaaaa{}".to_vec()),
    ];
    for (i, (reason, datagram)) in cases.iter().enumerate() {
        assert_eq!(send_recv(&client, hbd.addr, datagram), None, "no ACK for {reason}");
        heartbeat(&client, hbd.addr, "survivor", 30.0, i as u64);
        hbd.wait_log(&format!(": {reason}: "));
    }
    assert!(hbd.stop().success());
    let summary = hbd.wait_log("udp: stopped after");
    assert!(summary.contains("15 rejected"), "{summary}");
    assert!(summary.contains("bad_name=3") && summary.contains("too_large=2"), "{summary}");
    let journaled = hbd.journal().iter().filter(|v| is_message_from(v, "survivor")).count();
    assert!(journaled >= cases.len());
    assert!(hbd.journal().iter().all(|v| v["message"]["name"] != "a"), "nothing rejected reaches the journal");
}

#[test]
fn rejections_are_logged_at_a_limited_rate() {
    let dir = TempDir::new("ratelimit");
    let mut hbd = Hbd::start(&dir, "");
    let client = client("127.0.0.1:0");
    for _ in 0..200 {
        client.send_to(b"junk", hbd.addr).unwrap();
    }
    heartbeat(&client, hbd.addr, "still-here", 30.0, 1);
    assert!(hbd.stop().success());
    let log = hbd.log();
    assert_eq!(log.matches("rejected datagram from").count(), 1, "{log}");
    assert!(log.contains("200 rejected: not_json=200"), "{log}");
}

// ---------------------------------------------------------------- signed datagrams

const SECRET_1: &[u8] = b"first-secret-0123456789";
const SECRET_2: &[u8] = b"second-secret-0123456789";

fn signed_config() -> String {
    format!(
        "keys:\n  - id: k1\n    secret: {}\n    hosts: [\"*.lan\"]\n  - id: k2\n    secret: {}\nauth_window: 60\n",
        String::from_utf8_lossy(SECRET_1),
        String::from_utf8_lossy(SECRET_2)
    )
}

fn key(id: &str, secret: &[u8]) -> Key {
    Key::new(id, secret, vec![HostPattern::Any]).unwrap()
}

#[test]
fn signed_datagrams_are_required_verified_and_not_replayable() {
    let dir = TempDir::new("signed");
    let mut hbd = Hbd::start(&dir, &signed_config());
    let client = client("127.0.0.1:0");
    let k1 = key("k1", SECRET_1);
    let body = br#"{"ID":"HTB","name":"pi.lan","interval":30,"seq":1}"#;

    let sealed = k1.seal(now_us(), body);
    let ack = send_recv(&client, hbd.addr, &sealed).expect("signed heartbeat is acknowledged");
    let ring = Keyring::new(vec![k1.clone()], Duration::from_secs(60));
    let opened = ring.open(&ack, SystemTime::now()).expect("the ACK is signed with the same key");
    assert_eq!(opened.payload, br#"{"ID":"ACK","name":"pi.lan","seq":1}"#);

    let rejected: Vec<(&str, Vec<u8>)> = vec![
        ("replayed", sealed.clone()),
        ("unsigned", body.to_vec()),
        ("bad_signature", key("k1", b"wrong-secret-0123456789").seal(now_us(), body)),
        ("bad_signature", key("k9", SECRET_1).seal(now_us(), body)),
        ("stale", k1.seal(now_us() - 120_000_000, body)),
        ("host_not_allowed", k1.seal(now_us(), br#"{"ID":"HTB","name":"www.example.com"}"#)),
    ];
    for (reason, datagram) in &rejected {
        assert_eq!(send_recv(&client, hbd.addr, datagram), None, "{reason}");
        hbd.wait_log(&format!(": {reason}: "));
    }
    // The second key (rotation) works for any host, compressed too.
    let rotated = key("k2", SECRET_2).seal(now_us(), &zlib(br#"{"ID":"HTB","name":"www.example.com","seq":2}"#));
    assert!(send_recv(&client, hbd.addr, &rotated).is_some());
    hbd.wait_journal("signed message", |v| is_message_from(v, "www.example.com"));
    assert!(hbd.stop().success());

    // After a restart, the old datagram is still a replay.
    let mut hbd = Hbd::start(&dir, &signed_config());
    assert_eq!(send_recv(&client, hbd.addr, &sealed), None);
    hbd.wait_log(": replayed: ");
    assert!(send_recv(&client, hbd.addr, &k1.seal(now_us(), body)).is_some(), "a fresh one passes");
    assert!(hbd.stop().success());
}

// ---------------------------------------------------------------- daemon mode

#[test]
fn without_foreground_hbd_detaches_and_keeps_a_pid_file() {
    let dir = TempDir::new("daemon");
    let config = dir.join("hbd.yaml");
    let pidfile = dir.join("hbd.pid");
    let logfile = dir.join("hbd.log");
    fs::write(
        &config,
        format!(
            "{}pidfile: {}\nlogfile: {}\n",
            base_config(dir.path(), "127.0.0.1"),
            pidfile.display(),
            logfile.display()
        ),
    )
    .unwrap();
    let status = Command::new(hbd_bin()).arg("-c").arg(&config).current_dir(dir.path()).status().unwrap();
    assert!(status.success(), "the starting process exits 0 once detached");
    let pid: i32 = wait_for("pid file", || fs::read_to_string(&pidfile).ok()?.trim().parse().ok());
    struct KillOnDrop(i32);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            // SAFETY: the daemon this test started.
            unsafe { libc::kill(self.0, libc::SIGKILL) };
        }
    }
    let guard = KillOnDrop(pid);
    let line = wait_for("listening in the log file", || {
        fs::read_to_string(&logfile).ok()?.lines().find(|l| l.contains("udp: listening on ")).map(String::from)
    });
    let addr: SocketAddr = line.rsplit(' ').next().unwrap().parse().unwrap();
    heartbeat(&client("127.0.0.1:0"), addr, "to-daemon", 30.0, 1);

    let (code, _, stderr) = run_hbd(&["-c", config.to_str().unwrap()], &dir);
    assert_eq!(code, 1, "a second daemon refuses to start");
    assert!(stderr.contains("already running"), "{stderr}");

    // SAFETY: signalling the daemon this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    wait_for("pid file removed at exit", || (!pidfile.exists()).then_some(()));
    wait_for("state written at exit", || {
        fs::read_to_string(dir.join("state.json")).ok().filter(|s| s.contains("to-daemon"))
    });
    std::mem::forget(guard);
}

/// Moves every number of `value` a little, as a machine's figures move
/// between samples: floats by a percent per step at two decimals, integers
/// by the step.
fn moved(value: &Value, step: u64) -> Value {
    match value {
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), moved(v, step))).collect()),
        Value::Array(items) => Value::Array(items.iter().map(|v| moved(v, step)).collect()),
        Value::Number(n) if n.is_f64() => {
            json!(((n.as_f64().unwrap() * (1.0 + 0.013 * step as f64)) * 100.0).round() / 100.0)
        }
        Value::Number(n) if n.is_u64() => json!(n.as_u64().unwrap() + step),
        other => other.clone(),
    }
}

/// Issue 11: a sample read back from history is the sample that was sent,
/// for every built-in plugin (what `hbc --once --print` reports on this
/// machine, its numbers moved each sample) and for exec plugins whose keys
/// and kinds change between samples; the info plugins' latest sample whole.
#[test]
fn plugin_samples_read_back_are_the_samples_sent() {
    let printed = Command::new(env!("CARGO_BIN_EXE_hbc")).args(["--once", "--print", "--name", "t"]).output().unwrap();
    let template: Value = serde_json::from_slice(printed.stdout.split(|b| *b == b'\n').next().unwrap()).unwrap();
    let built_in: Vec<String> = template["plugins"].as_object().unwrap().keys().cloned().collect();
    assert!(built_in.len() >= 6, "{built_in:?}");
    let hostile = [
        json!({"a": 1, "b": {"c": [1, 2.5, "x", null, true]}}),
        json!({"a": "1", "b": {"c": [1, 2.5, "x", null, true]}, "new": 0.1}),
        json!({"a": 12.0, "b": {}, "nan": "NaN", "inf": "-Infinity"}),
        json!({"a": [], "huge": 1.7976931348623157e308, "tiny": 5e-324, "big": 18446744073709551615u64, "neg": -9223372036854775808i64}),
        json!({"a": 123456789.12345679, "e": 1e21, "z": -0.0, "u": "ünï ✓", "71.4": 71.4}),
        json!({"a": 71.35, "b": {"c": [1, 2.5, "x", null, true]}}),
        json!({"a": 71.4}),
    ];
    let dir = TempDir::new("read-back");
    let hbd = Hbd::start(&dir, "plugin_history: 10\n");
    let socket = client("127.0.0.1:0");
    let mut sent: Vec<Value> = Vec::new();
    for (i, odd) in hostile.iter().enumerate() {
        let mut message = template.clone();
        message["name"] = json!("read-back");
        message["seq"] = json!(i + 1);
        for plugin in message["plugins"].as_object_mut().unwrap().values_mut() {
            plugin["at"] = json!(1_780_000_000.0 + 60.0 * i as f64 + 0.007 * i as f64);
            if let Some(data) = plugin.get("data") {
                plugin["data"] = moved(data, i as u64);
            }
        }
        message["plugins"]["exec_odd"] = json!({"kind": "monitor", "at": 1_780_000_000.5 + i as f64, "data": odd});
        message["plugins"]["check_odd"] = if i == 3 {
            json!({"kind": "monitor", "at": 1_780_000_000.0 + i as f64, "error": "timed out after 10 s"})
        } else {
            let status = ["OK", "WARNING"][i % 2];
            let output = format!("DISK {status} - free {}%", 90 - i);
            json!({"kind": "monitor", "at": 1_780_000_000.0 + i as f64, "data": {"status": status, "exit_code": i % 2, "output": output}})
        };
        let datagram = zlib(message.to_string().as_bytes());
        wait_for("ACK", || send_recv(&socket, hbd.addr, &datagram));
        sent.push(message);
    }
    let mut plugins = built_in.clone();
    plugins.extend(["exec_odd".to_string(), "check_odd".to_string()]);
    for plugin in &plugins {
        let path = format!("/api/0/hosts/read-back/plugins/{plugin}?limit=10");
        let info = template["plugins"][plugin]["kind"] == "info";
        let expected: Vec<&Value> = if info { vec![&sent[sent.len() - 1]] } else { sent.iter().collect() };
        let samples = wait_for(&format!("{plugin}: every sample"), || {
            let (_, body) = get_json(hbd.http, &path);
            let samples = body["samples"].as_array()?.clone();
            (samples.len() == expected.len()).then_some(samples)
        });
        for (got, message) in samples.iter().zip(expected) {
            let entry = &message["plugins"][plugin];
            assert_eq!(got["at"], entry["at"], "{plugin}");
            assert_eq!(got.get("data"), entry.get("data"), "{plugin}");
            assert_eq!(got.get("error"), entry.get("error"), "{plugin}");
        }
    }
}
