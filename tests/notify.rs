//! Notifications with the real binary: email through a real SMTP server
//! (Debian's aiosmtpd, STARTTLS and login), and Pushover, Mattermost and
//! Signal through a local stand-in that checks each request against the
//! service's documented API. Faults: a service that refuses connections,
//! one that hangs, one that fails for a while; a restart with undelivered
//! messages; 40 hosts going down together.

mod support;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::standin::StandIn;
use support::*;

/// Debian's aiosmtpd with STARTTLS and login, saving what it accepts.
struct Smtpd {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
    cert: std::path::PathBuf,
}

impl Smtpd {
    fn start(dir: &TempDir) -> Smtpd {
        let (cert, key) = self_signed(dir);
        let mail = dir.join("mail");
        std::fs::create_dir_all(&mail).unwrap();
        let mut child = Command::new("/usr/bin/python3")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/smtpd.py"))
            .args([&mail, &cert, &key])
            .args(["hbd", "s3cret-pa55"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 with aiosmtpd (tests/run installs python3-aiosmtpd)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port = line.trim().strip_prefix("port ").and_then(|p| p.parse().ok()).expect("smtpd's port");
        Smtpd { child, port, dir: mail, cert }
    }

    /// The saved messages: (envelope, whole message text).
    fn messages(&self) -> Vec<(Value, String)> {
        let mut out = Vec::new();
        for n in 1.. {
            let (json, eml) = (self.dir.join(format!("{n}.json")), self.dir.join(format!("{n}.eml")));
            let (Ok(envelope), Ok(text)) = (std::fs::read_to_string(json), std::fs::read_to_string(eml)) else { break };
            out.push((serde_json::from_str(&envelope).unwrap(), text));
        }
        out
    }
}

impl Drop for Smtpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on: bound, then closed.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn http_services(pushover: SocketAddr, mattermost: SocketAddr, signal: SocketAddr) -> String {
    format!(
        "pushover: {{url: 'http://{pushover}/1/messages.json', token: azGDORePK8gMaC0QOYAMyEEuzJnyUi, user: uQiRzpo4DXghDmr9QzzfQu27cmVRsG, sound: siren, timeout: 2}}\n\
         mattermost: {{webhook_url: 'http://{mattermost}/hooks/xyz', channel: ops, username: hbd, timeout: 2}}\n\
         signal: {{url: 'http://{signal}', number: '+4915100000001', recipients: ['+4915100000002'], timeout: 2}}\n"
    )
}

/// Heartbeats from `names` with interval 1 and no grace: down in about 2 s.
fn soon_down(hbd: &Hbd, names: &[String]) {
    let udp = client("127.0.0.1:0");
    for (i, name) in names.iter().enumerate() {
        heartbeat(&udp, hbd.addr, name, 1.0, i as u64);
    }
}

fn notifications(hbd: &Hbd) -> Vec<Value> {
    hbd.journal().into_iter().filter(|l| l["type"] == "notification").collect()
}

#[test]
fn email_arrives_through_a_real_smtp_server_with_starttls_and_login() {
    let dir = TempDir::new("email");
    let smtpd = Smtpd::start(&dir);
    let config = format!(
        "grace: 0\nnotify_group_window: 0.5\nemail:\n  server: 127.0.0.1\n  port: {}\n  security: starttls\n  username: hbd\n  password_env: HBD_TEST_SMTP_PASSWORD\n  ca_file: {}\n  from: hbd@example.org\n  to: [ops@example.org, oncall@example.org]\n",
        smtpd.port,
        smtpd.cert.display()
    );
    std::env::set_var("HBD_TEST_SMTP_PASSWORD", "s3cret-pa55");
    let hbd = Hbd::start(&dir, &config);
    soon_down(&hbd, &["webserver01".to_string()]);
    let (envelope, text) = wait_for("the mail", || smtpd.messages().into_iter().next());
    assert_eq!(envelope["from"], "hbd@example.org");
    assert_eq!(envelope["to"], json!(["ops@example.org", "oncall@example.org"]));
    assert_eq!(
        (envelope["tls"].as_bool(), envelope["login"].as_bool()),
        (Some(true), Some(true)),
        "STARTTLS and login"
    );
    assert!(text.contains("Subject: [hbd] CRITICAL webserver01 host down (silent for "), "{text}");
    assert!(text.contains("CRITICAL: webserver01 - host down (silent for "), "{text}");
    let line =
        hbd.wait_journal("the delivery in the journal", |l| l["type"] == "notification" && l["delivered"] == true);
    assert_eq!(line["service"], "email");
    // The password never shows: not in the log, not in --check-config.
    assert!(!hbd.log().contains("s3cret-pa55"));
    let out = Command::new(hbd_bin())
        .args(["--check-config", "-c"])
        .arg(&hbd.config)
        .env("HBD_TEST_SMTP_PASSWORD", "s3cret-pa55")
        .output()
        .unwrap();
    assert!(out.status.success() && !String::from_utf8_lossy(&out.stdout).contains("s3cret-pa55"));

    // hbd --test-notify through the same server.
    let out = Command::new(hbd_bin())
        .args(["--test-notify", "-c"])
        .arg(&hbd.config)
        .env("HBD_TEST_SMTP_PASSWORD", "s3cret-pa55")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "email: delivered\n");
    assert_eq!(out.status.code(), Some(0));
    wait_for("the test mail", || {
        smtpd.messages().iter().any(|(_, t)| t.contains("Subject: [hbd] test message from hbd")).then_some(())
    });
    // A wrong password: the server's own refusal, exit 1.
    let out = Command::new(hbd_bin())
        .args(["--test-notify", "-c"])
        .arg(&hbd.config)
        .env("HBD_TEST_SMTP_PASSWORD", "wrong")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.starts_with("email: failed: ") && stdout.contains("535"), "{stdout}");
}

#[test]
fn http_services_get_their_documented_requests_and_40_hosts_make_one_message() {
    let dir = TempDir::new("http-services");
    let standin = StandIn::start(false);
    let config =
        format!("grace: 0\nnotify_group_window: 3\n{}", http_services(standin.addr, standin.addr, standin.addr));
    let hbd = Hbd::start(&dir, &config);
    let names: Vec<String> = (0..40).map(|i| format!("rack1-host{i:02}")).collect();
    soon_down(&hbd, &names);
    wait_for("a delivery to each service", || {
        (notifications(&hbd).iter().filter(|l| l["delivered"] == true).count() >= 3).then_some(())
    });
    for service in ["pushover", "mattermost", "signal"] {
        assert_eq!(standin.delivered(service).len(), 1, "one grouped message for {service}");
    }
    let pushover = &standin.delivered("pushover")[0];
    assert_eq!(pushover["title"], "[hbd] 40 alerts: 40 CRITICAL (rack1-host00, rack1-host01, rack1-host02, rack1-host03, rack1-host04 and 35 more)");
    assert_eq!((pushover["priority"].as_str(), pushover["sound"].as_str()), (Some("1"), Some("siren")));
    assert_eq!(pushover["token"], "azGDORePK8gMaC0QOYAMyEEuzJnyUi");
    let mattermost = &standin.delivered("mattermost")[0];
    assert_eq!((mattermost["channel"].as_str(), mattermost["username"].as_str()), (Some("ops"), Some("hbd")));
    assert!(mattermost["text"].as_str().unwrap().contains("CRITICAL: rack1-host39 - host down"));
    let signal = &standin.delivered("signal")[0];
    assert_eq!(signal["recipients"], json!(["+4915100000002"]));
    standin.assert_no_violations();
    let (_, _, metrics) = http_request(hbd.http, "GET", "/metrics", &[]);
    assert!(metrics.contains("hbd_notifications_sent_total{service=\"signal\"} 1"), "{metrics}");
}

#[test]
fn a_dead_and_a_hung_service_delay_nobody_and_a_recovering_one_gets_everything_in_order_once() {
    let dir = TempDir::new("faults");
    let (hung, flaky) = (StandIn::start(true), StandIn::start(false));
    flaky.fail_next.store(2, Ordering::SeqCst);
    // pushover: nothing listens; mattermost: hangs; signal: fails twice, then works.
    let refused: SocketAddr = format!("127.0.0.1:{}", closed_port()).parse().unwrap();
    let config = format!("grace: 0\nnotify_group_window: 0.2\n{}", http_services(refused, hung.addr, flaky.addr));
    let hbd = Hbd::start(&dir, &config);
    let started = Instant::now();
    soon_down(&hbd, &["first".to_string()]);
    hbd.wait_journal("first's alert", |l| l["type"] == "alert" && l["name"] == "first");
    soon_down(&hbd, &["second".to_string()]);
    hbd.wait_journal("second's alert", |l| l["type"] == "alert" && l["name"] == "second");
    // The flaky service recovers and gets both, in order, once, although
    // the other two never deliver.
    let subjects = wait_for("both at signal", || {
        let got = flaky.delivered("signal");
        (got.len() >= 2).then(|| got.iter().map(|m| m["message"].as_str().unwrap().to_string()).collect::<Vec<_>>())
    });
    assert!(subjects[0].contains("first") && subjects[1].contains("second"), "{subjects:?}");
    assert!(started.elapsed() < Duration::from_secs(40), "retries come back in seconds, not minutes");
    let journal = notifications(&hbd);
    let failed = |service: &str| journal.iter().filter(|l| l["service"] == service && l["delivered"] == false).count();
    assert!(failed("pushover") >= 1 && failed("signal") >= 2, "{journal:#?}");
    let refused_text =
        journal.iter().find(|l| l["service"] == "pushover").unwrap()["error"].as_str().unwrap().to_string();
    assert!(
        refused_text.to_lowercase().contains("refused") || refused_text.contains("connect"),
        "the service's own error: {refused_text}"
    );
    // Once, and nothing more later.
    hbd.wait_journal("mattermost's timeout", |l| l["type"] == "notification" && l["service"] == "mattermost");
    assert_eq!(flaky.delivered("signal").len(), 2);
    flaky.assert_no_violations();
}

#[test]
fn undelivered_messages_survive_a_restart_and_go_out_once() {
    let dir = TempDir::new("restart");
    let standin = StandIn::start(false);
    standin.fail_next.store(1000, Ordering::SeqCst);
    let config = format!("grace: 0\nnotify_group_window: 0.2\nsignal: {{url: 'http://{}', number: '+4915100000001', recipients: ['+4915100000002']}}\n", standin.addr);
    let mut hbd = Hbd::start(&dir, &config);
    soon_down(&hbd, &["lonely".to_string()]);
    hbd.wait_journal("a failed delivery", |l| l["type"] == "notification" && l["delivered"] == false);
    assert_eq!(hbd.stop().code(), Some(0));
    let queue: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("hbd-notify.json")).unwrap()).unwrap();
    assert_eq!(queue["messages"].as_array().map(Vec::len), Some(1), "{queue}");

    standin.fail_next.store(0, Ordering::SeqCst);
    let hbd = Hbd::start_with_config(&dir, &hbd.config.clone());
    wait_for("the delivery after the restart", || (!standin.delivered("signal").is_empty()).then_some(()));
    hbd.wait_journal("its journal line", |l| l["type"] == "notification" && l["delivered"] == true);
    let queue: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("hbd-notify.json")).unwrap()).unwrap();
    assert_eq!(queue["messages"], json!([]));
    assert_eq!(standin.delivered("signal").len(), 1, "once");
    assert!(standin.delivered("signal")[0]["message"].as_str().unwrap().contains("lonely"));
}

#[test]
fn bad_service_blocks_are_config_errors_naming_them() {
    let dir = TempDir::new("badnotify");
    let path = dir.join("bad.yaml");
    std::fs::write(&path, "pushover: {token: t, tokn: t}\nmattermost: {webhook_url: 'not a url'}\nemail: {server: m, from: nobody, to: x@example.org}\n").unwrap();
    let out = Command::new(hbd_bin()).args(["--check-config", "-c"]).arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    for expected in [
        "pushover: unknown key `tokn`",
        "mattermost.webhook_url: the value given is not an http:// or https:// URL",
        "email.from: `nobody` is not an email address",
    ] {
        assert!(stderr.contains(expected), "{expected:?} in {stderr}");
    }
    std::fs::write(&path, "").unwrap();
    let out = Command::new(hbd_bin()).args(["--test-notify", "-c"]).arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no notification service is configured"));
}

/// Issue 15: the notification queue survives a crash (SIGKILL), not only a
/// clean stop: what was undelivered is delivered after the restart, once.
#[test]
fn undelivered_messages_survive_sigkill() {
    let dir = TempDir::new("notify-kill");
    let standin = StandIn::start(false);
    standin.fail_next.store(1000, Ordering::SeqCst);
    let config = format!(
        "grace: 0\nnotify_group_window: 0.2\nsignal: {{url: 'http://{}', number: '+4915100000001', recipients: ['+4915100000002']}}\n",
        standin.addr
    );
    let mut hbd = Hbd::start(&dir, &config);
    soon_down(&hbd, &["crashy".to_string()]);
    hbd.wait_journal("a failed delivery", |l| l["type"] == "notification" && l["delivered"] == false);
    hbd.signal(libc::SIGKILL);
    let child = &mut hbd.child;
    wait_for("hbd to die", || child.try_wait().expect("wait for hbd"));
    standin.fail_next.store(0, Ordering::SeqCst);
    let hbd = Hbd::start_with_config(&dir, &hbd.config.clone());
    wait_for("the delivery after the crash", || (!standin.delivered("signal").is_empty()).then_some(()));
    hbd.wait_journal("its journal line", |l| l["type"] == "notification" && l["delivered"] == true);
    assert_eq!(standin.delivered("signal").len(), 1, "once");
    assert!(standin.delivered("signal")[0]["message"].as_str().unwrap().contains("crashy"));
}

/// The minimal `.hb.yaml` of the Python hbd's README, verbatim.
const PYTHON_README_MINIMAL: &str = "\
hbd_host: 0.0.0.0
hbd_port: 50004
dyndomains:
  - example.com
nsupdate_bin: /usr/bin/nsupdate
pushsrv: pushover
";

/// `hbd ARGS` (without notification credentials in its environment, plus
/// `env`) in `dir`: exit status, stdout, stderr.
fn run_in(dir: &TempDir, args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let out = hbd_command()
        .args(args)
        .current_dir(dir.path())
        .env("HOME", dir.path())
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run hbd");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn healthz_notify(hbd: &Hbd) -> Value {
    let (status, health) = get_json(hbd.http, "/healthz");
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")), "{health}");
    health["notify"].clone()
}

/// Waits for `/metrics` to hold `line`; returns the whole text.
fn wait_metric(hbd: &Hbd, line: &str) -> String {
    wait_for(line, || {
        let (status, _, body) = http_request(hbd.http, "GET", "/metrics", &[]);
        (status == 200 && body.lines().any(|l| l == line)).then_some(body)
    })
}

/// A stand-in for nsupdate that takes its script and succeeds, so that
/// `dyndomains: [example.com]` never reaches example.com's real servers.
fn fake_nsupdate(dir: &TempDir) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("nsupdate");
    std::fs::write(&path, "#!/bin/sh\ncat > /dev/null\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Issue 20: the Python README's minimal file is a working configuration;
/// Pushover, named without credentials, is only a warning.
#[test]
fn the_python_readmes_minimal_file_checks_ok_with_a_warning_naming_pushover() {
    let dir = TempDir::new("readme-minimal");
    let path = dir.join(".hb.yaml");
    std::fs::write(&path, PYTHON_README_MINIMAL).unwrap();
    let (code, stdout, stderr) = run_in(&dir, &["--check-config", "-c", path.to_str().unwrap()], &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("pushsrv: pushover") && stdout.contains("- example.com"), "{stdout}");
    let warning = stderr.lines().find(|l| l.contains("pushover")).unwrap_or_else(|| panic!("no warning: {stderr}"));
    assert!(warning.starts_with(&format!("hbd: warning: {}: pushover: not usable", path.display())), "{warning}");
    for needed in ["no token", "PUSHOVER_TOKEN", "token_file", "no user", "PUSHOVER_USER"] {
        assert!(warning.contains(needed), "{needed:?} in {warning}");
    }
    assert!(stderr.ends_with("configuration OK\n"), "{stderr}");

    // --test-notify has nothing it can send: it fails and says why.
    let (code, stdout, _) = run_in(&dir, &["--test-notify", "-c", path.to_str().unwrap()], &[]);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.starts_with("pushover: not usable: no token (set PUSHOVER_TOKEN"), "{stdout}");
}

/// The same file running (its addresses on loopback, nsupdate a stand-in):
/// hbd watches its hosts, says what Pushover lacks in its log, /healthz and
/// --test-notify, and counts the message it could not send, which does not
/// wait in the queue file.
#[test]
fn hbd_runs_with_the_minimal_file_and_counts_what_pushover_cannot_get() {
    let dir = TempDir::new("readme-running");
    let nsupdate = fake_nsupdate(&dir);
    let config = dir.join("hbd.yaml");
    let running = PYTHON_README_MINIMAL
        .replace("hbd_host: 0.0.0.0\nhbd_port: 50004\n", &base_config(dir.path(), "127.0.0.1"))
        .replace("/usr/bin/nsupdate", nsupdate.to_str().unwrap());
    assert!(!running.contains("0.0.0.0") && !running.contains("50004"), "{running}");
    std::fs::write(&config, format!("{running}grace: 0\nnotify_group_window: 0.2\n")).unwrap();
    let mut hbd = Hbd::start_with_config(&dir, &config);
    let warning = hbd.wait_log("pushover: not usable, nothing will be sent to it: no token (set PUSHOVER_TOKEN");
    assert!(warning.contains("WARN"), "{warning}");

    let notify = healthz_notify(&hbd);
    assert_eq!(notify.as_object().map(|o| o.len()), Some(1), "{notify}");
    assert_eq!(notify["pushover"]["usable"], false);
    let problem = notify["pushover"]["problem"].as_str().unwrap();
    assert!(problem.starts_with("no token (set PUSHOVER_TOKEN") && problem.contains("PUSHOVER_USER"), "{problem}");

    // A host that goes down: its alert cannot reach Pushover.
    soon_down(&hbd, &["lonely".to_string()]);
    hbd.wait_journal("lonely's alert", |l| l["type"] == "alert" && l["name"] == "lonely");
    let metrics = wait_metric(&hbd, "hbd_notifications_undeliverable_total{service=\"pushover\"} 1");
    for line in [
        "hbd_notify_service_usable{service=\"pushover\"} 0",
        "hbd_notifications_sent_total{service=\"pushover\"} 0",
        "hbd_notifications_pending{service=\"pushover\"} 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "missing {line} in\n{metrics}");
    }
    assert!(metrics.contains("# HELP hbd_notifications_undeliverable_total "), "{metrics}");
    assert_promtool_clean(&metrics);
    let line = hbd.wait_journal("the message given up", |l| l["type"] == "notification");
    assert_eq!((line["service"].as_str(), line["delivered"].as_bool()), (Some("pushover"), Some(false)));
    assert!(line["error"].as_str().unwrap().starts_with("not usable: no token"), "{line}");
    assert_eq!(line["will_retry"], false);
    // The host still counts as watched, and nothing waits on disk for Pushover.
    let (_, hosts) = get_json(hbd.http, "/api/0/hosts");
    assert_eq!(hosts["hosts"][0]["status"], "down");
    let queued = std::fs::read_to_string(dir.join("hbd-notify.json")).unwrap_or_default();
    assert!(!queued.contains("lonely"), "{queued}");

    let (code, stdout, _) = run_in(&dir, &["--test-notify", "-c", config.to_str().unwrap()], &[]);
    assert_eq!(code, Some(1));
    assert!(stdout.starts_with("pushover: not usable: no token"), "{stdout}");
    assert_eq!(hbd.stop().code(), Some(0));
    let queued = std::fs::read_to_string(dir.join("hbd-notify.json")).unwrap_or_default();
    assert!(!queued.contains("lonely"), "not queued at shutdown either: {queued}");
}

/// Pushover's credentials from PUSHOVER_TOKEN and PUSHOVER_USER when the
/// block names none (it gives only the stand-in's URL).
#[test]
fn pushover_takes_its_credentials_from_the_environment() {
    let dir = TempDir::new("pushover-env");
    let standin = StandIn::start(false);
    let config = dir.join("hbd.yaml");
    std::fs::write(
        &config,
        format!(
            "{}grace: 0\nnotify_group_window: 0.2\npushsrv: pushover\npushover: {{url: 'http://{}/1/messages.json', timeout: 2}}\n",
            base_config(dir.path(), "127.0.0.1"),
            standin.addr
        ),
    )
    .unwrap();
    let env =
        [("PUSHOVER_TOKEN", "azGDORePK8gMaC0QOYAMyEEuzJnyUi"), ("PUSHOVER_USER", "uQiRzpo4DXghDmr9QzzfQu27cmVRsG")];
    let hbd = Hbd::start_with_env(&dir, &config, &env);
    assert_eq!(healthz_notify(&hbd), json!({"pushover": {"usable": true, "problem": null}}));
    assert!(!hbd.log().contains("not usable"), "{}", hbd.log());
    soon_down(&hbd, &["envhost".to_string()]);
    let delivered = wait_for("the message at the stand-in", || standin.delivered("pushover").into_iter().next());
    assert_eq!(delivered["token"], "azGDORePK8gMaC0QOYAMyEEuzJnyUi");
    assert_eq!(delivered["user"], "uQiRzpo4DXghDmr9QzzfQu27cmVRsG");
    assert!(delivered["message"].as_str().unwrap().contains("envhost - host down"), "{delivered}");
    standin.assert_no_violations();
    let metrics = wait_metric(&hbd, "hbd_notifications_sent_total{service=\"pushover\"} 1");
    assert!(metrics.lines().any(|l| l == "hbd_notify_service_usable{service=\"pushover\"} 1"), "{metrics}");
    assert!(!hbd.log().contains("azGDORePK8gMaC0QOYAMyEEuzJnyUi"), "the token never shows in the log");

    // --test-notify with the same environment delivers; without it, it says why not.
    let (code, stdout, _) = run_in(&dir, &["--test-notify", "-c", config.to_str().unwrap()], &env);
    assert_eq!((code, stdout.as_str()), (Some(0), "pushover: delivered\n"));
    let (code, stdout, _) = run_in(&dir, &["--test-notify", "-c", config.to_str().unwrap()], &env[..1]);
    assert_eq!(code, Some(1));
    assert!(stdout.starts_with("pushover: not usable: no user (set PUSHOVER_USER"), "{stdout}");
}

/// `pushsrv: all` with only Mattermost configured: hbd starts, names
/// Pushover as not usable, and Mattermost gets its messages regardless.
#[test]
fn pushsrv_all_with_one_service_configured_starts_and_names_the_other() {
    let dir = TempDir::new("pushsrv-all");
    let standin = StandIn::start(false);
    let config = dir.join("hbd.yaml");
    std::fs::write(
        &config,
        format!(
            "{}grace: 0\nnotify_group_window: 0.2\npushsrv: all\nmattermost: {{webhook_url: 'http://{}/hooks/xyz', timeout: 2}}\n",
            base_config(dir.path(), "127.0.0.1"),
            standin.addr
        ),
    )
    .unwrap();
    let (code, _, stderr) = run_in(&dir, &["--check-config", "-c", config.to_str().unwrap()], &[]);
    assert_eq!(code, Some(0), "{stderr}");
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.starts_with("hbd: warning: ")).collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(warnings[0].contains(": pushover: not usable") && warnings[0].contains("PUSHOVER_TOKEN"), "{stderr}");

    let mut hbd = Hbd::start_with_config(&dir, &config);
    hbd.wait_log("pushover: not usable");
    let notify = healthz_notify(&hbd);
    assert_eq!(notify["mattermost"], json!({"usable": true, "problem": null}));
    assert_eq!(notify["pushover"]["usable"], false, "{notify}");
    assert!(notify["pushover"]["problem"].as_str().unwrap().contains("PUSHOVER_USER"), "{notify}");
    soon_down(&hbd, &["half".to_string()]);
    wait_for("mattermost's message", || standin.delivered("mattermost").into_iter().next());
    let metrics = wait_metric(&hbd, "hbd_notifications_undeliverable_total{service=\"pushover\"} 1");
    for line in [
        "hbd_notifications_undeliverable_total{service=\"mattermost\"} 0",
        "hbd_notify_service_usable{service=\"mattermost\"} 1",
        "hbd_notify_service_usable{service=\"pushover\"} 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "missing {line} in\n{metrics}");
    }
    assert_promtool_clean(&metrics);
    wait_metric(&hbd, "hbd_notifications_sent_total{service=\"mattermost\"} 1");
    standin.assert_no_violations();
    let (code, stdout, _) = run_in(&dir, &["--test-notify", "-c", config.to_str().unwrap()], &[]);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("pushover: not usable: ") && stdout.contains("mattermost: delivered"), "{stdout}");
}

/// Messages queued for a service that is no longer usable after a restart
/// (its recipients gone from its block) are counted and leave the queue
/// file, instead of waiting there for ever.
#[test]
fn messages_queued_for_a_service_no_longer_usable_leave_the_queue_file() {
    let dir = TempDir::new("queued-unusable");
    let standin = StandIn::start(false);
    standin.fail_next.store(1000, Ordering::SeqCst);
    let signal = format!("signal: {{url: 'http://{}', number: '+4915100000001'", standin.addr);
    let mut hbd =
        Hbd::start(&dir, &format!("grace: 0\nnotify_group_window: 0.2\n{signal}, recipients: ['+4915100000002']}}\n"));
    soon_down(&hbd, &["stranded".to_string()]);
    hbd.wait_journal("a failed delivery", |l| l["type"] == "notification" && l["delivered"] == false);
    assert_eq!(hbd.stop().code(), Some(0));
    let queue_file = dir.join("hbd-notify.json");
    assert!(std::fs::read_to_string(&queue_file).unwrap().contains("stranded"));

    let config = dir.join("hbd.yaml");
    std::fs::write(&config, format!("{}{signal}}}\n", base_config(dir.path(), "127.0.0.1"))).unwrap();
    let mut hbd = Hbd::start_with_config(&dir, &config);
    hbd.wait_log(
        "signal: not usable, nothing will be sent to it: no recipients (give recipients in the signal: block)",
    );
    wait_metric(&hbd, "hbd_notifications_undeliverable_total{service=\"signal\"} 1");
    wait_for("the queue file without the message", || {
        let queue: Value = serde_json::from_str(&std::fs::read_to_string(&queue_file).ok()?).ok()?;
        (queue["messages"] == json!([])).then_some(())
    });
    assert!(standin.delivered("signal").is_empty());
}
