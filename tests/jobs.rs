//! Jobs as checks with the real binaries: `hbc run` and `hbc signal`
//! against a running hbd, and `JOB` datagrams sent by hand as a router's
//! shell script would with `nc -u`.

mod support;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::standin::StandIn;
use support::*;

fn hbc() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hbc"));
    // No ~/.hbc.yaml of whoever runs the tests.
    command.env("HOME", std::env::temp_dir()).stdin(Stdio::null());
    command
}

/// `hbc run -s HBD ARGS…`, its output and how long it took.
fn hbc_run(hbd: &Hbd, args: &[&str]) -> (Output, Duration) {
    let started = Instant::now();
    let out = hbc().arg("run").args(["-s", &hbd.addr.to_string()]).args(args).output().expect("run hbc");
    (out, started.elapsed())
}

fn host(hbd: &Hbd, name: &str) -> Value {
    wait_for(&format!("host {name}"), || {
        let (status, body) = get_json(hbd.http, &format!("/api/0/hosts/{name}"));
        (status == 200).then_some(body)
    })
}

fn last_run(hbd: &Hbd, name: &str) -> Value {
    host(hbd, name)["job"]["runs"].as_array().and_then(|r| r.last().cloned()).unwrap_or(Value::Null)
}

/// The last run once `ready` holds for it: hbd acknowledges a signal
/// before its core has taken it.
fn run_when(hbd: &Hbd, name: &str, ready: impl Fn(&Value) -> bool) -> Value {
    wait_for(&format!("the run of {name}"), || Some(last_run(hbd, name)).filter(|r| ready(r)))
}

fn alert_when(hbd: &Hbd, name: &str, metric: &str, level: &str) -> Value {
    wait_for(&format!("{name}'s {metric} alert at {level}"), || {
        job_alert(hbd, name, metric).filter(|a| a["level"] == level)
    })
}

fn job_alert(hbd: &Hbd, name: &str, metric: &str) -> Option<Value> {
    let (_, body) = get_json(hbd.http, &format!("/api/0/hosts/{name}/alerts"));
    body["alerts"].as_array()?.iter().find(|a| a["plugin"] == "job" && a["metric_path"] == metric).cloned()
}

fn mattermost(standin: &StandIn, needle: &str) -> usize {
    standin.delivered("mattermost").iter().filter(|d| d["text"].as_str().unwrap_or("").contains(needle)).count()
}

/// The issue's first proof: a failed run exits with its status, is shown
/// with its code, run time and output, is CRITICAL at once and notified
/// once; a successful run clears it; the runs survive a restart.
#[test]
fn a_failed_run_is_critical_at_once_and_a_successful_run_clears_it() {
    let dir = TempDir::new("jobs-fail");
    let standin = StandIn::start(false);
    let config = format!(
        "notify_group_window: 0.2\nmattermost: {{webhook_url: 'http://{}/hooks/xyz', channel: ops, username: hbd, timeout: 2}}\n",
        standin.addr
    );
    let mut hbd = Hbd::start(&dir, &config);
    let (out, _) = hbc_run(&hbd, &["--name", "backup", "--interval", "3600", "--", "sh", "-c", "echo hi; exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n", "output passed through");
    assert!(out.stderr.is_empty(), "nothing to say when hbd answers: {}", String::from_utf8_lossy(&out.stderr));

    let run = run_when(&hbd, "backup", |r| r["outcome"] == "failed");
    assert_eq!(run["exit_code"].as_i64(), Some(3), "{run}");
    assert!(run["duration_s"].as_f64().is_some_and(|d| d >= 0.0), "{run}");
    assert!(run["output"].as_str().is_some_and(|o| o.contains("hi")), "{run}");
    let job = host(&hbd, "backup");
    assert_eq!(
        (job["kind"].as_str(), job["interval"].as_f64(), job["status"].as_str()),
        (Some("job"), Some(3600.0), Some("up"))
    );
    let alert = alert_when(&hbd, "backup", "exit_code", "CRITICAL");
    assert_eq!(alert["last_value"].as_f64(), Some(3.0), "{alert}");
    let (_, list) = get_json(hbd.http, "/api/0/hosts");
    let listed = list["hosts"].as_array().unwrap().iter().find(|h| h["name"] == "backup").cloned().unwrap();
    assert_eq!(listed["kind"], "job");
    assert!(listed["job"]["runs"][0].get("output").is_none(), "lists carry no output: {listed}");
    let (_, picked) = get_json(hbd.http, "/api/0/hosts?fields=name,kind&status=up");
    assert_eq!(picked["hosts"], json!([{"name": "backup", "kind": "job"}]));
    hbd.wait_journal("job_fail", |l| l["type"] == "job_fail" && l["name"] == "backup" && l["exit_code"] == 3);
    assert!(hbd.journal().iter().any(|l| l["type"] == "job_start" && l["name"] == "backup"));
    wait_for("the failure on Mattermost", || {
        (mattermost(&standin, "CRITICAL: backup - job failed") == 1).then_some(())
    });
    let text = standin
        .delivered("mattermost")
        .into_iter()
        .find(|d| d["text"].as_str().unwrap().contains("job failed"))
        .unwrap();
    assert!(text["text"].as_str().unwrap().contains("exit code 3"), "{text}");

    // A second failure is no news; a success is.
    assert_eq!(hbc_run(&hbd, &["--name", "backup", "--", "false"]).0.status.code(), Some(1));
    assert_eq!(hbc_run(&hbd, &["--name", "backup", "--", "true"]).0.status.code(), Some(0));
    alert_when(&hbd, "backup", "exit_code", "OK");
    run_when(&hbd, "backup", |r| r["outcome"] == "ok");
    assert_eq!(host(&hbd, "backup")["interval"], 3600.0, "a run without --interval keeps the job's");
    wait_for("the recovery on Mattermost", || (mattermost(&standin, "RECOVERED: backup") == 1).then_some(()));
    assert_eq!(mattermost(&standin, "CRITICAL: backup"), 1, "notified once");
    standin.assert_no_violations();

    hbd.stop();
    let hbd = Hbd::start_with_config(&dir, &hbd.config.clone());
    let runs = host(&hbd, "backup")["job"]["runs"].as_array().cloned().unwrap_or_default();
    let outcomes: Vec<&str> = runs.iter().filter_map(|r| r["outcome"].as_str()).collect();
    assert_eq!(outcomes, ["failed", "failed", "ok"], "runs are saved in the state file");
}

/// Late is down: a job whose success does not come within its interval
/// plus grace goes down; a start or a failure does not keep it up.
#[test]
fn a_job_that_stops_succeeding_goes_down_after_interval_plus_grace() {
    let dir = TempDir::new("jobs-late");
    let hbd = Hbd::start(&dir, "grace: 30\n");
    let signal = |args: &[&str]| {
        let out =
            hbc().arg("signal").args(["-s", &hbd.addr.to_string(), "--name", "nightly"]).args(args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    signal(&["--ok", "--interval", "1", "--grace", "1"]);
    wait_for("the job's own grace, not hbd's 30", || (host(&hbd, "nightly")["job"]["grace"] == 1.0).then_some(()));
    signal(&["--start"]);
    signal(&["--fail=2", "--message", "disk full"]);
    let down = hbd.wait_journal("nightly down", |l| l["type"] == "host_down" && l["name"] == "nightly");
    assert!(down["silent_for"].as_f64().unwrap() > 2.0, "interval 1 + grace 1 from the success: {down}");
    let run = run_when(&hbd, "nightly", |r| r["outcome"] == "failed");
    assert_eq!((run["exit_code"].as_i64(), run["message"].as_str()), (Some(2), Some("disk full")), "{run}");
    signal(&["--ok"]);
    hbd.wait_journal("nightly up", |l| l["type"] == "host_up" && l["name"] == "nightly");
}

/// `--timeout` ends the command and everything it started, reports a
/// failed run, and exits 124 as timeout(1) does.
#[test]
fn timeout_kills_the_command_and_its_children() {
    let dir = TempDir::new("jobs-timeout");
    let hbd = Hbd::start(&dir, "");
    let pidfile = dir.join("child.pid");
    let script = format!("sleep 300 & echo $! > {}; sleep 300", pidfile.display());
    let (out, took) = hbc_run(&hbd, &["--name", "slow", "--timeout", "1", "--", "sh", "-c", &script]);
    assert_eq!(out.status.code(), Some(124), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(took < Duration::from_secs(12), "{took:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("timed out after 1 s"));
    let child: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    wait_for("the background sleep gone", || {
        let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
        // Gone, or a zombie waiting for init.
        (stat.is_empty() || stat.split(' ').nth(2) == Some("Z")).then_some(())
    });
    let run = run_when(&hbd, "slow", |r| r["outcome"] == "failed");
    assert_eq!(run["signal"].as_i64(), Some(15), "{run}");
    assert!(run["message"].as_str().unwrap().contains("timed out"), "{run}");
    assert_eq!(host(&hbd, "slow")["job"]["timeout"], 1.0);
}

/// hbd down, or hbc's configuration broken: the job runs all the same,
/// exits with its status, and hbc says on standard error that it could not
/// report, within a bounded wait.
#[test]
fn a_job_runs_and_exits_with_its_status_when_hbd_is_unreachable() {
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let started = Instant::now();
    let out =
        hbc().args(["run", "-s", &addr, "--name", "job1", "--", "sh", "-c", "echo out; exit 5"]).output().unwrap();
    assert_eq!(out.status.code(), Some(5));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("job job1: end not reported to hbd: no ACK from"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(10), "bounded: {:?}", started.elapsed());
    // The datagrams came (and were never answered).
    let mut buf = [0u8; 8192];
    silent.set_read_timeout(Some(DEADLINE)).unwrap();
    let (n, _) = silent.recv_from(&mut buf).unwrap();
    let json = match buf[0] {
        b'{' => buf[..n].to_vec(),
        _ => hbd::wire::decode::inflate_capped(&buf[..n], 1 << 20).unwrap(),
    };
    let first: Value = serde_json::from_slice(&json).unwrap();
    assert_eq!((first["ID"].as_str(), first["event"].as_str()), (Some("JOB"), Some("start")));

    let dir = TempDir::new("jobs-broken-config");
    let config = dir.join("hbc.yaml");
    std::fs::write(&config, "server: [").unwrap();
    let out = hbc().arg("run").arg("-c").arg(&config).args(["--", "sh", "-c", "exit 7"]).output().unwrap();
    assert_eq!(out.status.code(), Some(7));
    assert!(String::from_utf8_lossy(&out.stderr).contains("job sh: not reported to hbd"));
    let out = hbc().args(["run", "-s", &addr, "--name", "x", "--", "/nonexistent/backup.sh"]).output().unwrap();
    assert_eq!(out.status.code(), Some(127));
    let out = hbc().args(["run", "--name", "Not Valid", "--", "true"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "a usage error runs nothing");
}

/// The datagram of docs/PROTOCOL.md from a plain UDP socket, as `nc -u`
/// sends it, acknowledged and shown; hostile values refused, hostile
/// output kept as text; `hbc signal` likewise.
#[test]
fn raw_job_datagrams_and_hbc_signal() {
    let dir = TempDir::new("jobs-raw");
    let hbd = Hbd::start(&dir, "");
    let socket = client("127.0.0.1:0");
    let datagram = br#"{"ID":"JOB","name":"router-backup","event":"fail","exit_code":2,"output":"tftp: timeout\n<script>alert(1)</script>","seq":1}"#;
    let ack = send_recv(&socket, hbd.addr, datagram).expect("an ACK");
    let ack: Value = serde_json::from_slice(&ack).unwrap();
    assert_eq!(ack, json!({"ID": "ACK", "name": "router-backup", "seq": 1}));
    let run = run_when(&hbd, "router-backup", |r| r["outcome"] == "failed");
    assert_eq!(run["exit_code"].as_i64(), Some(2));
    assert_eq!(run["output"], "tftp: timeout\n<script>alert(1)</script>");
    alert_when(&hbd, "router-backup", "exit_code", "CRITICAL");
    // The same signal again (its ACK was lost) is acknowledged, not a new run.
    assert!(send_recv(&socket, hbd.addr, datagram).is_some());
    assert_eq!(host(&hbd, "router-backup")["job"]["runs"].as_array().unwrap().len(), 1);
    for bad in [
        r#"{"ID":"JOB","name":"router-backup","event":"done"}"#,
        r#"{"ID":"JOB","name":"router-backup","event":"fail","signal":1000}"#,
        r#"{"ID":"JOB","name":"<b>x</b>","event":"ok"}"#,
    ] {
        assert!(send_recv(&socket, hbd.addr, bad.as_bytes()).is_none(), "{bad} refused, unanswered");
    }
    let out = hbc()
        .args([
            "signal",
            "-s",
            &hbd.addr.to_string(),
            "--name",
            "router-backup",
            "--ok",
            "--message",
            "retried by hand",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    run_when(&hbd, "router-backup", |r| r["message"] == "retried by hand");
    alert_when(&hbd, "router-backup", "exit_code", "OK");
    let out = hbc().args(["signal", "-s", &hbd.addr.to_string(), "--name", "x", "--ok", "--fail"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// A slow run can be warned about like any metric: the `job` plugin's
/// `duration_seconds` under a `thresholds:` rule.
#[test]
fn a_rule_on_run_time_warns_about_slow_runs() {
    let dir = TempDir::new("jobs-slow");
    let hbd = Hbd::start(&dir, "thresholds:\n  job:\n    duration_seconds: {warning: 100, critical: 1000}\n");
    let socket = client("127.0.0.1:0");
    let slow = br#"{"ID":"JOB","name":"report","event":"ok","duration_s":250,"seq":5}"#;
    assert!(send_recv(&socket, hbd.addr, slow).is_some());
    let alert = alert_when(&hbd, "report", "duration_seconds", "WARNING");
    assert_eq!(alert["last_value"].as_f64(), Some(250.0));
}

/// With `keys:`, hbc signs a job's signals with the key of hbc.yaml like
/// heartbeats; an unsigned datagram, or a name the key may not speak for,
/// is refused (the job still runs and exits with its status).
#[test]
fn signed_signals() {
    let dir = TempDir::new("jobs-signed");
    let hbd = Hbd::start(&dir, "keys:\n  - {id: site1, secret: a-long-enough-secret, hosts: [\"*.jobs\"]}\n");
    let config = dir.join("hbc.yaml");
    let hbc_yaml = format!("server: \"{}\"\nkey: {{id: site1, secret: a-long-enough-secret}}\ntags: [db]\n", hbd.addr);
    std::fs::write(&config, hbc_yaml).unwrap();
    let run = |name: &str| {
        hbc().arg("run").arg("-c").arg(&config).args(["--name", name, "--", "sh", "-c", "exit 6"]).output().unwrap()
    };
    let out = run("backup.jobs");
    assert_eq!(out.status.code(), Some(6));
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    run_when(&hbd, "backup.jobs", |r| r["outcome"] == "failed" && r["exit_code"] == 6);
    assert_eq!(host(&hbd, "backup.jobs")["tags"], json!(["db"]), "hbc.yaml's tags go with the signals");
    assert_eq!(host(&hbd, "backup.jobs")["tags"], json!(["db"]), "hbc.yaml's tags go with the signals");
    let out = run("backup.elsewhere");
    assert_eq!(out.status.code(), Some(6));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not reported to hbd"));
    let socket = client("127.0.0.1:0");
    assert!(send_recv(&socket, hbd.addr, br#"{"ID":"JOB","name":"backup.jobs","event":"ok"}"#).is_none(), "unsigned");
    assert_eq!(last_run(&hbd, "backup.jobs")["outcome"], "failed");
    assert_eq!(host(&hbd, "backup.jobs")["tags"], json!(["db"]), "kept");
}

/// A run that started and never ended (the machine died with it) is
/// CRITICAL once its timeout plus grace have passed, and OK when a run ends.
#[test]
fn a_run_that_never_ends_is_critical_after_its_timeout() {
    let dir = TempDir::new("jobs-hung");
    let hbd = Hbd::start(&dir, "");
    let socket = client("127.0.0.1:0");
    let start = br#"{"ID":"JOB","name":"hung","event":"start","timeout":1,"grace":0,"interval":3600,"seq":1}"#;
    assert!(send_recv(&socket, hbd.addr, start).is_some());
    let alert = alert_when(&hbd, "hung", "running_seconds", "CRITICAL");
    assert!(alert["message"].as_str().unwrap_or("").contains("job run not finished after"), "{alert}");
    assert_eq!(last_run(&hbd, "hung")["outcome"], "running");
    let ok = br#"{"ID":"JOB","name":"hung","event":"ok","seq":2}"#;
    assert!(send_recv(&socket, hbd.addr, ok).is_some());
    alert_when(&hbd, "hung", "running_seconds", "OK");
    let run = run_when(&hbd, "hung", |r| r["outcome"] == "ok");
    assert!(run["duration_s"].as_f64().unwrap() >= 1.0, "hbd's own measure from the start: {run}");
}

/// SIGTERM to `hbc run` (cron stopping, a person's kill) reaches the
/// command's process group, and the run is reported with how it ended.
#[test]
fn signals_to_hbc_run_reach_the_command() {
    let dir = TempDir::new("jobs-sigterm");
    let hbd = Hbd::start(&dir, "");
    let mut child = hbc()
        .args(["run", "-s", &hbd.addr.to_string(), "--name", "stoppable", "--"])
        .args(["sh", "-c", "trap 'echo stopped; exit 9' TERM; echo ready; sleep 300 & wait"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // The trap is set once the command says so (passed through by hbc).
    let mut ready = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut ready).unwrap();
    assert_eq!(ready, "ready\n");
    run_when(&hbd, "stoppable", |r| r["outcome"] == "running");
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let status = wait_for("hbc run to end", || child.try_wait().unwrap());
    assert_eq!(status.code(), Some(9));
    let run = run_when(&hbd, "stoppable", |r| r["outcome"] == "failed");
    assert_eq!(run["exit_code"], 9);
    assert!(run["output"].as_str().unwrap().contains("stopped"), "{run}");
}
