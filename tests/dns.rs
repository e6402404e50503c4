//! Dynamic DNS end to end: the real `hbd` updating a real BIND `named` on
//! loopback through the real `nsupdate`, with TSIG, checked with `dig`
//! (Debian bind9 and bind9-dnsutils; tests/run installs them).

mod support;

use std::fs;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

/// Zones named serves, both updatable with the test's key.
const ZONES: [&str; 2] = ["example.test", "dyn.test"];

/// A BIND `named` in the foreground on 127.0.0.1 and ::1, every file in
/// `dir`; killed when dropped.
struct Named {
    child: Child,
    port: u16,
    /// The TSIG key named accepts, and one with the same name but another secret.
    key: PathBuf,
    wrong_key: PathBuf,
    log: PathBuf,
}

impl Named {
    fn start(dir: &Path) -> Named {
        let dir = dir.join("named");
        fs::create_dir_all(&dir).unwrap();
        let key = dir.join("hbd.key");
        let out = Command::new("tsig-keygen").args(["-a", "hmac-sha256", "hbd-key"]).output().expect("run tsig-keygen");
        assert!(out.status.success(), "tsig-keygen: {}", String::from_utf8_lossy(&out.stderr));
        let key_text = String::from_utf8(out.stdout).unwrap();
        fs::write(&key, &key_text).unwrap();
        let wrong_key = dir.join("wrong.key");
        // key "hbd-key" { algorithm hmac-sha256; secret "…"; };
        let secret = key_text.split('"').nth(3).expect("a quoted secret in the key");
        fs::write(&wrong_key, key_text.replace(secret, "c2VjcmV0IHRoYXQgbmFtZWQgZG9lcyBub3Qga25vdyE=")).unwrap();

        let port = free_port();
        let mut conf = format!(
            "include \"{key}\";\n# No rndc channel: it would take port 953, shared by every test's named.\ncontrols {{ }};\noptions {{\n  directory \"{d}\";\n  pid-file \"{d}/named.pid\";\n  \
             session-keyfile \"{d}/session.key\";\n  managed-keys-directory \"{d}\";\n  \
             listen-on port {port} {{ 127.0.0.1; }};\n  listen-on-v6 port {port} {{ ::1; }};\n  \
             recursion no;\n  dnssec-validation no;\n  notify no;\n}};\n",
            key = key.display(),
            d = dir.display()
        );
        for zone in ZONES {
            fs::write(
                dir.join(format!("{zone}.db")),
                format!("$TTL 60\n@ IN SOA ns.{zone}. admin.{zone}. 1 60 60 600 60\n@ IN NS ns.{zone}.\nns IN A 127.0.0.1\n"),
            )
            .unwrap();
            conf.push_str(&format!(
                "zone \"{zone}\" {{ type primary; file \"{}/{zone}.db\"; allow-update {{ key hbd-key; }}; }};\n",
                dir.display()
            ));
        }
        let config = dir.join("named.conf");
        fs::write(&config, conf).unwrap();
        let log = dir.join("named.log");
        let child = Command::new("/usr/sbin/named")
            .args(["-g", "-c"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .expect("run /usr/sbin/named");
        let mut named = Named { child, port, key, wrong_key, log };
        let child = &mut named.child;
        let log = named.log.clone();
        wait_for("named to load its zones", || {
            let text = fs::read_to_string(&log).unwrap_or_default();
            if let Ok(Some(status)) = child.try_wait() {
                panic!("named exited ({status}):\n{text}");
            }
            text.contains("running").then_some(())
        });
        // "running" can come before the zones are loaded: ready when each answers for its SOA.
        for zone in ZONES {
            wait_for(&format!("named to serve {zone}"), || (!named.dig(zone, "SOA").is_empty()).then_some(()));
        }
        named
    }

    /// What `dig` finds for `name`'s `record` (A, AAAA), one address a line.
    fn dig(&self, name: &str, record: &str) -> String {
        let out = Command::new("dig")
            .args(["+short", "+time=2", "+tries=1", "@127.0.0.1", "-p", &self.port.to_string(), name, record])
            .output()
            .expect("run dig");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn wait_record(&self, name: &str, record: &str, expected: &str) {
        wait_for(&format!("{name} {record} {expected} in named"), || {
            (self.dig(name, record) == expected).then_some(())
        });
    }
}

impl Drop for Named {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port free on loopback for both UDP and TCP, as named needs both.
fn free_port() -> u16 {
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() && UdpSocket::bind(("::1", port)).is_ok() {
            return port;
        }
    }
}

/// hbd receiving on every address (IPv4 and IPv6), updating `named`.
fn start_hbd(dir: &TempDir, named: &Named, key: &Path, extra: &str) -> Hbd {
    let config = dir.join("hbd.yaml");
    let base = base_config(dir.path(), "127.0.0.1").replace("hb_host: \"127.0.0.1\"", "hb_host: \"::\"");
    fs::write(
        &config,
        format!(
            "{base}dyndomains: [{}]\ndns_server: 127.0.0.1\ndns_port: {}\ndns_key_file: {}\ndns_ttl: 300\n{extra}",
            ZONES.join(", "),
            named.port,
            key.display()
        ),
    )
    .unwrap();
    Hbd::start_with_config(dir, &config)
}

/// A heartbeat from `source` (an IP address) to hbd, acknowledged.
fn beat(hbd: &Hbd, source: &str, name: &str) {
    let ip: std::net::IpAddr = source.parse().unwrap();
    let socket = client(&SocketAddr::new(ip, 0).to_string());
    heartbeat(&socket, SocketAddr::new(ip, hbd.addr.port()), name, 30.0, 1);
}

fn dns_lines(hbd: &Hbd, name: &str) -> Vec<Value> {
    hbd.journal().into_iter().filter(|v| event_of(v, "dns_update", name).is_some()).collect()
}

fn metric(hbd: &Hbd, name: &str) -> f64 {
    let (_, _, body) = http_request(hbd.http, "GET", "/metrics", &[]);
    let line = body.lines().find(|l| l.split(' ').next() == Some(name)).unwrap_or_else(|| panic!("{name} in {body}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn records_follow_hosts_over_ipv4_and_ipv6_and_a_restart_sends_nothing_twice() {
    let dir = TempDir::new("dns");
    let named = Named::start(dir.path());
    let mut hbd = start_hbd(&dir, &named, &named.key, "");
    beat(&hbd, "127.0.0.1", "web4");
    beat(&hbd, "::1", "web6");
    for zone in ZONES {
        named.wait_record(&format!("web4.{zone}"), "A", "127.0.0.1");
        named.wait_record(&format!("web6.{zone}"), "AAAA", "::1");
    }
    let line = hbd.wait_journal("dns_update of web6", |v| event_of(v, "dns_update", "web6").is_some());
    assert_eq!(line["record"], "AAAA");
    assert_eq!(line["address"], "::1");
    assert_eq!(line["outcome"], "updated");

    // A changed address is updated; only the newest matters.
    beat(&hbd, "127.0.0.2", "web4");
    for zone in ZONES {
        named.wait_record(&format!("web4.{zone}"), "A", "127.0.0.2");
    }
    wait_for("no DNS update pending", || (metric(&hbd, "hbd_dns_pending") == 0.0).then_some(()));
    assert_eq!(metric(&hbd, "hbd_dns_updates_total"), 6.0);
    let failed: Vec<Value> = hbd.journal().into_iter().filter(|v| v["outcome"] == "failed").collect();
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(metric(&hbd, "hbd_dns_failures_total"), 0.0);
    assert!(hbd.stop().success());
    assert_eq!(hbd.state()["hosts"].as_array().unwrap().len(), 2);

    // After a restart, what DNS already holds is not sent again.
    let before = hbd.journal().len();
    let hbd = start_hbd(&dir, &named, &named.key, "");
    beat(&hbd, "127.0.0.3", "late");
    for zone in ZONES {
        named.wait_record(&format!("late.{zone}"), "A", "127.0.0.3");
    }
    wait_for("late's updates journaled", || (dns_lines(&hbd, "late").len() == 2).then_some(()));
    let resent: Vec<Value> =
        hbd.journal().into_iter().skip(before).filter(|v| v["type"] == "dns_update" && v["name"] != "late").collect();
    assert!(resent.is_empty(), "sent again after the restart: {resent:?}");
    assert_eq!(metric(&hbd, "hbd_dns_updates_total"), 2.0);
}

#[test]
fn a_refused_update_is_journaled_and_logged_then_sent_after_a_restart_with_the_right_key() {
    let dir = TempDir::new("dns-key");
    let named = Named::start(dir.path());
    let mut hbd = start_hbd(&dir, &named, &named.wrong_key, "");
    beat(&hbd, "127.0.0.1", "keyed");
    let line = hbd.wait_journal("a failed dns_update", |v| event_of(v, "dns_update", "keyed").is_some());
    assert_eq!(line["outcome"], "failed", "{line}");
    let error = line["error"].as_str().unwrap();
    // BIND's refusal, in nsupdate's words.
    assert!(error.contains("update failed: NOTAUTH(BADSIG)"), "{line}");
    assert_eq!(line["retry_in"], 5.0);
    let warning = hbd.wait_log("dns: host keyed, domain ");
    assert!(warning.contains("NOTAUTH(BADSIG)") && warning.contains("retrying in 5 s"), "{warning}");
    assert_eq!(named.dig("keyed.example.test", "A"), "");
    assert!(metric(&hbd, "hbd_dns_failures_total") >= 1.0);
    assert_eq!(metric(&hbd, "hbd_dns_pending"), 2.0);
    assert!(hbd.stop().success());

    // The failed updates are still wanted after a restart: sent without a new heartbeat.
    let hbd = start_hbd(&dir, &named, &named.key, "");
    for zone in ZONES {
        named.wait_record(&format!("keyed.{zone}"), "A", "127.0.0.1");
    }
    wait_for("nothing pending", || (metric(&hbd, "hbd_dns_pending") == 0.0).then_some(()));
}

#[test]
fn a_hung_nsupdate_is_killed_at_the_timeout_and_retried_while_others_go_through() {
    let dir = TempDir::new("dns-hung");
    let named = Named::start(dir.path());
    // Stands in for nsupdate: hangs on the updates of host `hung` (in a
    // child of its own, which only a kill of the process group reaches),
    // and passes the rest on to the real one.
    let stand_in = dir.join("nsupdate");
    fs::write(
        &stand_in,
        "#!/bin/sh\nscript=$(cat)\ncase \"$script\" in\n  *' hung.'*) sleep 3601 & wait ;;\nesac\n\
         printf '%s\\n' \"$script\" | exec /usr/bin/nsupdate \"$@\"\n",
    )
    .unwrap();
    fs::set_permissions(&stand_in, fs::Permissions::from_mode(0o755)).unwrap();
    let extra = format!("nsupdate_bin: {}\ndns_timeout: 2\n", stand_in.display());
    let hbd = start_hbd(&dir, &named, &named.key, &extra);
    let started = Instant::now();
    beat(&hbd, "127.0.0.1", "hung");
    beat(&hbd, "127.0.0.1", "quick");
    for zone in ZONES {
        named.wait_record(&format!("quick.{zone}"), "A", "127.0.0.1");
    }
    let quick_after = started.elapsed();
    assert!(quick_after < Duration::from_secs(2), "quick waited for the hung one: {quick_after:?}");

    let failed = wait_for("both hung updates killed at the timeout", || {
        let lines = dns_lines(&hbd, "hung");
        (lines.len() == ZONES.len()).then(|| lines[0].clone())
    });
    assert_eq!(failed["outcome"], "failed");
    assert!(failed["error"].as_str().unwrap().contains("dns_timeout"), "{failed}");
    assert!(started.elapsed() >= Duration::from_secs(2), "killed before dns_timeout");
    // Killed with its process group: the stand-in's own child is gone too.
    let left = Command::new("pgrep").args(["-f", "sleep 3601"]).output().unwrap();
    assert!(left.stdout.is_empty(), "still running: {}", String::from_utf8_lossy(&left.stdout));
    // Retried after 5 s (and killed again).
    wait_for("the hung update's second attempt", || (dns_lines(&hbd, "hung").len() > ZONES.len()).then_some(()));
    assert!(hbd.log().contains("(attempt 2)"), "{}", hbd.log());
    assert_eq!(named.dig("hung.example.test", "A"), "");
}

/// `DELETE /api/0/hosts/NAME?dns=1` (`hbd forget --dns`): the host is
/// forgotten and its A and AAAA records leave every zone, for real in BIND.
#[test]
fn a_host_forgotten_with_its_dns_records_leaves_every_zone() {
    let dir = TempDir::new("dns-forget");
    let named = Named::start(dir.path());
    let tokens = dir.join("tokens");
    fs::write(&tokens, "ops admin ops-secret-0123456789\n").unwrap();
    fs::set_permissions(&tokens, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let hbd = start_hbd(&dir, &named, &named.key, &format!("api_tokens_file: {}\n", tokens.display()));
    beat(&hbd, "127.0.0.1", "gone4");
    beat(&hbd, "::1", "gone4");
    beat(&hbd, "127.0.0.1", "stays");
    for zone in ZONES {
        named.wait_record(&format!("gone4.{zone}"), "A", "127.0.0.1");
        named.wait_record(&format!("gone4.{zone}"), "AAAA", "::1");
        named.wait_record(&format!("stays.{zone}"), "A", "127.0.0.1");
    }
    let (status, _, body) = http_request(
        hbd.http,
        "DELETE",
        "/api/0/hosts/gone4?dns=1",
        &[("Authorization", "Bearer ops-secret-0123456789")],
    );
    assert_eq!(status, 200, "{body}");
    for zone in ZONES {
        named.wait_record(&format!("gone4.{zone}"), "A", "");
        named.wait_record(&format!("gone4.{zone}"), "AAAA", "");
        assert_eq!(named.dig(&format!("stays.{zone}"), "A"), "127.0.0.1", "only the forgotten host's records go");
    }
    let removed = wait_for("both removals journaled", || {
        let lines: Vec<Value> =
            hbd.journal().into_iter().filter(|v| event_of(v, "dns_removed", "gone4").is_some()).collect();
        (lines.len() == ZONES.len()).then_some(lines)
    });
    assert!(removed.iter().all(|l| l["outcome"] == "removed"), "{removed:?}");
    let (status, _, _) = http_request(
        hbd.http,
        "DELETE",
        "/api/0/hosts/stays?dns=maybe",
        &[("Authorization", "Bearer ops-secret-0123456789")],
    );
    assert_eq!(status, 400, "a flag that is neither 1 nor 0");
}
