//! Threshold alerting with the real binaries: the Python README's
//! `thresholds:` loaded as is, `hbc` with an exec plugin whose value the
//! test sets driving a metric through OK → WARNING → CRITICAL → OK (seen in
//! the journal, `/api/0/alerts`, the WebSocket and `/metrics`), the
//! README's bash and Python examples run against it, a restart that fires
//! nothing again, a host that goes down, and rules that are wrong.

mod support;

use std::fs;
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use support::*;
use tungstenite::{Message, WebSocket};

/// The Python README's thresholds, verbatim, plus a rule for the test's exec plugin.
const THRESHOLDS: &str = r#"
thresholds:
  cpu_monitor:
    cpu_percent:
      warning: 80.0      # Warn when CPU > 80%
      critical: 90.0     # Critical when CPU > 90%
      operator: ">"
      hysteresis: 0.1    # 10% hysteresis to prevent flapping

  memory_monitor:
    percent:
      warning: 85.0
      critical: 95.0

  disk_monitor:
    partitions:
      /:
        percent:
          warning: 80.0
          critical: 90.0
        free_gb:
          warning: 10.0   # Alert when < 10GB free
          critical: 5.0
          operator: "<"   # Inverse threshold
  gauge:
    value:
      warning: 80.0
      critical: 90.0
      hysteresis: 0.1

# Global settings
threshold_renotify_interval: 3600  # Re-notify every hour for ongoing alerts
"#;

/// `hbc` sending the exec plugin `gauge` (which prints `value.json`) every second.
struct Client {
    child: Child,
    value: std::path::PathBuf,
}

impl Client {
    /// Starts with the gauge at `first`.
    fn start(dir: &TempDir, hbd: &Hbd, name: &str, first: f64) -> Client {
        let value = dir.join("value.json");
        fs::write(&value, format!("{{\"value\": {first:?}}}")).unwrap();
        let config = dir.join("hbc.yaml");
        fs::write(
            &config,
            format!(
                "server: \"{}\"\ninterval: 1\nname: {name}\nplugins:\n  exec:\n    - name: gauge\n      command: cat {}\n      interval: 1\n",
                hbd.addr,
                value.display()
            ),
        )
        .unwrap();
        let mut args = vec!["-c".to_string(), config.display().to_string()];
        for plugin in ["os_info", "cpu_monitor", "memory_monitor", "disk_monitor", "network_monitor", "filesystem_info"]
        {
            args.extend(["--disable-plugin".to_string(), plugin.to_string()]);
        }
        let child = Command::new(env!("CARGO_BIN_EXE_hbc"))
            .args(&args)
            .env("HOME", dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn hbc");
        Client { child, value }
    }

    fn set(&self, value: f64) {
        // Written whole in one go: `cat` never reads half a file.
        let tmp = self.value.with_extension("tmp");
        fs::write(&tmp, format!("{{\"value\": {value:?}}}")).unwrap();
        fs::rename(&tmp, &self.value).unwrap();
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn alerts(hbd: &Hbd) -> Value {
    let (status, body) = get_json(hbd.http, "/api/0/alerts");
    assert_eq!(status, 200, "{body}");
    body
}

fn alert_lines(hbd: &Hbd) -> Vec<Value> {
    hbd.journal().into_iter().filter(|l| l["type"] == "alert").collect()
}

fn wait_alert(hbd: &Hbd, message: &str) -> Value {
    hbd.wait_journal(message, |l| l["type"] == "alert" && l["text"] == message)
}

/// A WebSocket client of hbd that collects what it is sent.
fn ws_connect(hbd: &Hbd) -> WebSocket<TcpStream> {
    let stream = TcpStream::connect(hbd.ws).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let (mut socket, _) = tungstenite::client(format!("ws://{}/", hbd.ws), stream).expect("ws handshake");
    let snapshot = socket.read().expect("snapshot");
    assert!(snapshot.to_text().unwrap().contains("\"snapshot\""));
    socket
}

fn ws_wait(socket: &mut WebSocket<TcpStream>, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
    wait_for(what, || match socket.read() {
        Ok(Message::Text(text)) => serde_json::from_str::<Value>(&text).ok().filter(|m| matches(m)),
        _ => None,
    })
}

#[test]
fn a_metric_goes_ok_warning_critical_ok_everywhere_and_a_restart_fires_nothing() {
    let dir = TempDir::new("alerts");
    let mut hbd = Hbd::start(&dir, THRESHOLDS);
    let client = Client::start(&dir, &hbd, "webserver01", 50.0);
    let mut ws = ws_connect(&hbd);

    // OK first: the alert is tracked at OK, nothing fires.
    wait_for("the gauge tracked at OK", || (alerts(&hbd)["summary"]["ok"] == 1).then_some(()));
    assert!(alert_lines(&hbd).is_empty());

    client.set(85.0);
    let line = wait_alert(&hbd, "WARNING: webserver01 - gauge.value = 85.0");
    assert_eq!((line["from"].as_str(), line["level"].as_str()), (Some("OK"), Some("WARNING")));
    assert_eq!((line["value"].as_f64(), line["threshold"].as_f64()), (Some(85.0), Some(80.0)));
    ws_wait(&mut ws, "the WARNING over the WebSocket", |m| {
        m["type"] == "alert" && m["level"] == "WARNING" && m["text"] == "WARNING: webserver01 - gauge.value = 85.0"
    });

    client.set(96.0);
    wait_alert(&hbd, "CRITICAL: webserver01 - gauge.value = 96.0");
    ws_wait(&mut ws, "the CRITICAL over the WebSocket", |m| m["type"] == "alert" && m["level"] == "CRITICAL");
    let body = alerts(&hbd);
    assert_eq!(body["summary"], json!({"ok": 0, "warning": 0, "critical": 1, "unknown": 0}), "{body}");
    let alert = &body["alerts"][0];
    assert_eq!(
        (&alert["hostname"], &alert["plugin"], &alert["metric_path"], &alert["level"]),
        (&json!("webserver01"), &json!("gauge"), &json!("value"), &json!("CRITICAL"))
    );
    assert_eq!((alert["last_value"].as_f64(), alert["threshold"].as_f64()), (Some(96.0), Some(90.0)));
    assert!(alert["since"].as_f64().is_some() && alert["last_notified"].as_f64().is_some(), "{alert}");
    let (status, host) = get_json(hbd.http, "/api/0/hosts/webserver01/alerts");
    assert_eq!((status, &host["alerts"][0]["level"]), (200, &json!("CRITICAL")), "{host}");
    let (status, _) = get_json(hbd.http, "/api/0/hosts/nosuchhost/alerts");
    assert_eq!(status, 404);
    let (_, listed) = get_json(hbd.http, "/api/0/hosts/webserver01");
    assert_eq!(listed["alert_level"], "CRITICAL");

    // The README's integration examples, as a user would run them.
    let url = format!("http://{}/api/0/alerts", hbd.http);
    let bash = r#"CRITICAL=$(curl -s "$URL" | jq '.summary.critical')
if [ "$CRITICAL" -gt 0 ]; then
    echo "CRITICAL: $CRITICAL critical alerts detected!"
fi"#;
    let out = Command::new("bash").args(["-c", bash]).env("URL", &url).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "CRITICAL: 1 critical alerts detected!");
    assert_eq!(readme_python(&url), "⚠️ 1 CRITICAL alerts!\n  webserver01: value = 96.0\n");

    // /metrics: promtool-clean, with the alert's level (2 = CRITICAL).
    let (_, _, metrics) = http_request(hbd.http, "GET", "/metrics", &[]);
    assert!(metrics.contains("hbd_alert_level{host=\"webserver01\",plugin=\"gauge\",metric=\"value\"} 2"), "{metrics}");
    assert!(metrics.contains("hbd_alerts{level=\"critical\"} 1"), "{metrics}");

    // Hysteresis: 85 is below 90 but above 81, still CRITICAL.
    client.set(85.0);
    wait_for("a sample of 85 taken", || (alerts(&hbd)["alerts"][0]["last_value"] == 85.0).then_some(()));
    assert_eq!(alerts(&hbd)["alerts"][0]["level"], "CRITICAL");

    // A restart with the alert active fires nothing again.
    let before = alert_lines(&hbd).len();
    assert_eq!(hbd.stop().code(), Some(0));
    let restarted_at = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
    let config = hbd.config.clone();
    hbd = Hbd::start_with_config(&dir, &config);
    drop(client);
    let restarted_client = Client::start(&dir, &hbd, "webserver01", 85.0);
    wait_for("samples after the restart", || {
        let (_, plugins) = get_json(hbd.http, "/api/0/hosts/webserver01/plugins/gauge?limit=100");
        let samples = plugins["samples"].as_array()?;
        let after_restart = samples.iter().filter(|s| s["received"].as_f64() > Some(restarted_at)).count();
        (after_restart >= 3).then_some(())
    });
    let body = alerts(&hbd);
    assert_eq!(body["summary"]["critical"], 1, "the alert survived the restart: {body}");
    assert_eq!(alert_lines(&hbd).len(), before, "no transition after the restart");

    restarted_client.set(10.0);
    let line = wait_alert(&hbd, "RECOVERED: webserver01 - gauge.value = 10.0 (CRITICAL -> OK)");
    assert_eq!(line["level"], "OK");
    assert_eq!(alerts(&hbd)["alerts"], json!([]), "no active alerts");
}

#[test]
fn a_silent_host_is_a_critical_alert_until_it_is_back() {
    let dir = TempDir::new("hostdown");
    let hbd = Hbd::start(&dir, "grace: 0\n");
    let udp = client("127.0.0.1:0");
    heartbeat(&udp, hbd.addr, "flaky", 1.0, 1);
    // Silent for its interval of 1 s and then some: the core looks once a second.
    hbd.wait_journal("host down alert", |l| {
        l["type"] == "alert"
            && l["text"].as_str().is_some_and(|m| m.starts_with("CRITICAL: flaky - host down (silent for "))
    });
    let body = alerts(&hbd);
    let alert = &body["alerts"][0];
    assert_eq!(
        (&alert["hostname"], &alert["plugin"], &alert["level"]),
        (&json!("flaky"), &json!("heartbeat"), &json!("CRITICAL"))
    );
    heartbeat(&udp, hbd.addr, "flaky", 30.0, 2);
    wait_alert(&hbd, "RECOVERED: flaky - host up (CRITICAL -> OK)");
    assert_eq!(alerts(&hbd)["summary"]["critical"], 0);
}

/// The README's hysteresis example with the real binaries: warning 80,
/// critical 90, hysteresis 0.1: 91 → CRITICAL, 85 → CRITICAL, 79 → OK.
#[test]
fn the_readme_hysteresis_sequence() {
    let dir = TempDir::new("hysteresis");
    let hbd = Hbd::start(&dir, THRESHOLDS);
    let client = Client::start(&dir, &hbd, "webserver01", 91.0);
    wait_alert(&hbd, "CRITICAL: webserver01 - gauge.value = 91.0");
    client.set(85.0);
    wait_for("a sample of 85 judged", || (alerts(&hbd)["alerts"][0]["last_value"] == 85.0).then_some(()));
    assert_eq!(alerts(&hbd)["alerts"][0]["level"], "CRITICAL", "85 is still above 81");
    client.set(79.0);
    let line = wait_alert(&hbd, "RECOVERED: webserver01 - gauge.value = 79.0 (CRITICAL -> OK)");
    assert_eq!(line["level"], "OK", "79 is below 81 and below 80: OK, not WARNING");
    assert_eq!(alerts(&hbd)["summary"]["warning"], 0);
}

/// The README's Python example, verbatim but for the URL.
fn readme_python(url: &str) -> String {
    let python = format!(
        r#"import requests
response = requests.get('{url}')
alerts = response.json()
if alerts['summary']['critical'] > 0:
    print(f"⚠️ {{alerts['summary']['critical']}} CRITICAL alerts!")
    for alert in alerts['alerts']:
        if alert['level'] == 'CRITICAL':
            print(f"  {{alert['hostname']}}: {{alert['metric_path']}} = {{alert['last_value']}}")
"#
    );
    // Debian's python3, where tests/run installs python3-requests.
    let out = Command::new("/usr/bin/python3").args(["-c", &python]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One meaning of "critical": a down host is one CRITICAL alert whose value
/// is its silence; its own CRITICAL metric is held under it (listed there,
/// not counted, no "stopped reporting" beside it) until it returns; the
/// README's Python and bash examples and /metrics say the same.
#[test]
fn a_down_host_is_one_critical_alert_and_holds_its_own() {
    let dir = TempDir::new("held");
    let hbd = Hbd::start(&dir, &format!("{THRESHOLDS}grace: 1\n"));
    let client = Client::start(&dir, &hbd, "db1", 96.0);
    wait_alert(&hbd, "CRITICAL: db1 - gauge.value = 96.0");
    drop(client);
    // Silent for 5 s: past interval + grace, and past the 3 intervals after
    // which a plugin of a host that still talked would be "stopped reporting".
    let body = wait_for("db1 down for 5 s", || {
        let body = alerts(&hbd);
        (body["alerts"][0]["plugin"] == "heartbeat" && body["alerts"][0]["last_value"].as_f64()? >= 5.0).then_some(body)
    });
    assert_eq!(body["summary"], json!({"ok": 0, "warning": 0, "critical": 1, "unknown": 0}), "{body}");
    assert_eq!(body["count"], 1, "{body}");
    let down = &body["alerts"][0];
    assert_eq!(
        (&down["hostname"], &down["metric_path"], &down["level"]),
        (&json!("db1"), &json!("silent_for_seconds"), &json!("CRITICAL"))
    );
    let held = down["held"].as_array().unwrap();
    assert_eq!(held.len(), 1, "the gauge alone, no stopped-reporting alert: {body}");
    assert_eq!((&held[0]["plugin"], &held[0]["level"]), (&json!("gauge"), &json!("CRITICAL")));
    let (_, host) = get_json(hbd.http, "/api/0/hosts/db1/alerts");
    assert_eq!(host["summary"]["critical"], 1, "{host}");

    let url = format!("http://{}/api/0/alerts", hbd.http);
    let printed = readme_python(&url);
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), 2, "{printed}");
    assert_eq!(lines[0], "⚠️ 1 CRITICAL alerts!");
    let silence: f64 = lines[1].strip_prefix("  db1: silent_for_seconds = ").and_then(|v| v.parse().ok()).unwrap();
    assert!(silence >= 5.0, "{printed}");
    let bash = r#"CRITICAL=$(curl -s "$URL" | jq '.summary.critical')
if [ "$CRITICAL" -gt 0 ]; then
    echo "CRITICAL: $CRITICAL critical alerts detected!"
fi"#;
    let out = Command::new("bash").args(["-c", bash]).env("URL", &url).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "CRITICAL: 1 critical alerts detected!");
    let (_, _, metrics) = http_request(hbd.http, "GET", "/metrics", &[]);
    assert!(metrics.contains("hbd_alerts{level=\"critical\"} 1\n"), "{metrics}");
    assert!(metrics.contains("hbd_alerts_held 1\n"), "{metrics}");
    assert!(
        !alert_lines(&hbd).iter().any(|l| l["level"] == "UNKNOWN"),
        "no stopped-reporting alert for a host that is down"
    );

    // Back: the host-down alert recovers, the gauge counts again, then recovers too.
    let client = Client::start(&dir, &hbd, "db1", 10.0);
    wait_alert(&hbd, "RECOVERED: db1 - host up (CRITICAL -> OK)");
    wait_alert(&hbd, "RECOVERED: db1 - gauge.value = 10.0 (CRITICAL -> OK)");
    assert_eq!(alerts(&hbd)["summary"]["critical"], 0);
    assert_eq!(readme_python(&url), "");
    drop(client);
}

/// Five samples half a second apart, then heartbeats without the plugin: it
/// is "stopped reporting" only after three of the host's intervals, not
/// three half seconds.
#[test]
fn a_burst_of_samples_does_not_shorten_the_wait_for_the_next() {
    let dir = TempDir::new("burst");
    let hbd = Hbd::start(&dir, "");
    let udp = client("127.0.0.1:0");
    let taken = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
    let message = |seq: u64, plugins: Value| {
        json!({"ID": "HTB", "name": "bursty", "interval": 2, "seq": seq, "plugins": plugins}).to_string()
    };
    for seq in 0..5u64 {
        let entry = json!({"burst": {"kind": "monitor", "at": taken + seq as f64 * 0.5, "data": {"v": seq}}});
        wait_for("an ACK", || send_recv(&udp, hbd.addr, message(seq, entry.clone()).as_bytes()));
    }
    // Heartbeats every half second, as long as it takes (bounded by wait_for).
    let mut seq = 10;
    let line = wait_for("burst stopped reporting", || {
        seq += 1;
        send_recv(&udp, hbd.addr, message(seq, json!({})).as_bytes());
        alert_lines(&hbd).into_iter().find(|l| l["level"] == "UNKNOWN")
    });
    let text = line.to_string();
    let silent: f64 = text
        .split("no sample for ")
        .nth(1)
        .and_then(|rest| rest.split('s').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{text}"));
    assert!(silent >= 6.0, "3 host intervals of 2 s, not 3 × 0.5 s: {text}");
    // It reports again (no rule watches it): the alert recovers.
    let entry = json!({"burst": {"kind": "monitor", "at": taken + 60.0, "data": {"v": 9}}});
    wait_for("an ACK", || send_recv(&udp, hbd.addr, message(99, entry.clone()).as_bytes()));
    let line = wait_for("burst reporting again", || {
        alert_lines(&hbd).into_iter().find(|l| l["level"] == "OK" && l["plugin"] == "burst")
    });
    assert!(line.to_string().contains("burst reporting again (UNKNOWN -> OK)"), "{line}");
}

#[test]
fn nagios_checks_are_alerts_without_rules() {
    let dir = TempDir::new("nagiosalerts");
    let hbd = Hbd::start(&dir, "");
    let udp = client("127.0.0.1:0");
    let message = json!({"ID": "HTB", "name": "db1", "interval": 30, "seq": 1, "plugins": {"nagios_runner": {
        "kind": "monitor", "at": 1.0,
        "data": {"checks": {"check_disk": {"exit_code": 2, "status": "CRITICAL", "output": "DISK CRITICAL - / 97%"}}}}}});
    wait_for("ACK", || send_recv(&udp, hbd.addr, message.to_string().as_bytes()));
    wait_alert(&hbd, "CRITICAL: db1 - nagios_runner.checks.check_disk.exit_code = 2 (DISK CRITICAL - / 97%)");
}

#[test]
fn wrong_rules_stop_start_up_and_odd_paths_are_warned_about() {
    let dir = TempDir::new("badrules");
    let path = dir.join("bad.yaml");
    fs::write(
        &path,
        "thresholds:\n  cpu_monitor:\n    cpu_percent: {warning: 95, critical: 90}\n    load_1min: {warning: high}\n  memory_monitor:\n    percent: {critical: 90, operator: '=>'}\n",
    )
    .unwrap();
    let out = Command::new(hbd_bin()).args(["--check-config", "-c"]).arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    for expected in [
        "bad.yaml: thresholds.cpu_monitor.cpu_percent: warning 95 and critical 90 are in the wrong order",
        "bad.yaml: thresholds.cpu_monitor.load_1min: warning: `high` is not a number",
        "bad.yaml: thresholds.memory_monitor.percent: operator `=>` is not one of",
    ] {
        assert!(stderr.contains(expected), "{expected:?} in:\n{stderr}");
    }

    fs::write(
        &path,
        "thresholds:\n  cpu_monitor:\n    cpu_prcent: {warning: 80}\n  my_exec:\n    anything: {warning: 1}\n",
    )
    .unwrap();
    let out = Command::new(hbd_bin()).args(["--check-config", "-c"]).arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("warning: ")
            && stderr.contains("thresholds.cpu_monitor.cpu_prcent: cpu_monitor reports no such metric"),
        "{stderr}"
    );
    assert!(!stderr.contains("my_exec"), "exec plugins have paths of their own: {stderr}");
}
