//! hbds that watch each other (`peers:`), with the real binary: two that
//! list each other each track the other as a peer host; when one is killed
//! with SIGKILL, the other says so through its notifier (a local Mattermost
//! stand-in) after the dead one's interval plus grace.

mod support;

use std::net::UdpSocket;

use support::standin::StandIn;
use support::*;

/// A UDP port free on loopback now, for a config that must name it before
/// its hbd starts (each peer names the other's).
fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start_peer(dir: &TempDir, name: &str, port: u16, peer_port: u16, mattermost: &str) -> Hbd {
    let config = dir.join("hbd.yaml");
    let base = base_config(dir.path(), "127.0.0.1").replace("hb_port: 0\n", &format!("hb_port: {port}\n"));
    std::fs::write(
        &config,
        format!(
            "{base}hbd_name: {name}\npeers:\n  - host: 127.0.0.1\n    port: {peer_port}\npeer_interval: 1\ngrace: 2\n\
             notify_group_window: 0\n{mattermost}"
        ),
    )
    .unwrap();
    Hbd::start_with_config(dir, &config)
}

fn host(hbd: &Hbd, name: &str) -> Option<serde_json::Value> {
    let (status, host) = get_json(hbd.http, &format!("/api/0/hosts/{name}"));
    (status == 200).then_some(host)
}

#[test]
fn two_hbds_watch_each_other_and_the_survivor_reports_the_dead_one() {
    let standin = StandIn::start(false);
    let mattermost = standin.mattermost_config();
    let (port_a, port_b) = (free_udp_port(), free_udp_port());
    let (dir_a, dir_b) = (TempDir::new("peer-a"), TempDir::new("peer-b"));
    let mut a = start_peer(&dir_a, "monitor-a", port_a, port_b, &mattermost);
    let b = start_peer(&dir_b, "monitor-b", port_b, port_a, &mattermost);

    // Each knows the other as an up peer hbd, with the interval it declares.
    let seen_by_b = wait_for("b to hear a", || host(&b, "monitor-a").filter(|h| h["status"] == "up"));
    assert_eq!(seen_by_b["peer"], true);
    assert_eq!(seen_by_b["interval"], 1.0);
    let seen_by_a = wait_for("a to hear b", || host(&a, "monitor-b").filter(|h| h["status"] == "up"));
    assert_eq!(seen_by_a["peer"], true);
    assert_eq!(get_json(a.http, "/healthz").1["name"], "monitor-a");

    a.signal(libc::SIGKILL);
    let _ = a.child.wait();
    b.wait_journal("monitor-a down at b", |l| event_of(l, "host_down", "monitor-a").is_some());
    let message = wait_for("b's message about monitor-a", || {
        standin
            .delivered("mattermost")
            .into_iter()
            .find(|m| m["text"].as_str().is_some_and(|t| t.contains("monitor-a")))
    });
    assert!(message["text"].as_str().unwrap().contains("down"), "{message}");
    // monitor-a was never told of anything: nothing at the stand-in names b.
    assert!(standin.delivered("mattermost").iter().all(|m| !m["text"].as_str().unwrap_or("").contains("monitor-b")));
    standin.assert_no_violations();
}

#[test]
fn a_peer_that_takes_only_signed_heartbeats_gets_them_signed() {
    let secret = "peer-secret-0123456789";
    let dir_b = TempDir::new("peer-signed-b");
    let b = Hbd::start(&dir_b, &format!("keys:\n  - id: peers\n    secret: {secret}\n"));
    let dir_a = TempDir::new("peer-signed-a");
    let _a = Hbd::start(
        &dir_a,
        &format!(
            "hbd_name: monitor-a\npeer_interval: 1\npeers:\n  - host: 127.0.0.1\n    port: {}\n    key: {{id: peers, secret: {secret}}}\n",
            b.addr.port()
        ),
    );
    let host = wait_for("b to hear a, signed", || host(&b, "monitor-a"));
    assert_eq!(host["peer"], true);
}

#[test]
fn bad_peers_are_config_errors_naming_them() {
    let dir = TempDir::new("peer-bad");
    let config = dir.join("hbd.yaml");
    std::fs::write(
        &config,
        "hbd_name: not_a_name\npeers:\n  - host: ''\n  - {host: a, port: 0}\npeer_interval: 0\nstandby_for: 'x y'\n",
    )
    .unwrap();
    let out = hbd_command().args(["--check-config", "-c"]).arg(&config).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    for needle in [
        "hbd_name: `not_a_name` is not an RFC 1123 host name",
        "peers[0].host: is empty",
        "peers[1].port:",
        "peer_interval",
        "standby_for: `x y` is not an RFC 1123 host name",
    ] {
        assert!(stderr.contains(needle), "{needle:?} in {stderr}");
    }
}

/// A primary and its standby (`standby_for`) receive the same heartbeats:
/// while both run a host going down gives one message (the primary's);
/// once the primary is killed, the standby sends what is outstanding (the
/// host still down, and the primary itself) once.
#[test]
fn a_standby_holds_while_its_primary_runs_and_sends_the_outstanding_once_it_dies() {
    let standin = StandIn::start(false);
    let mattermost = standin.mattermost_config();
    let (port_a, port_b) = (free_udp_port(), free_udp_port());
    let (dir_a, dir_b) = (TempDir::new("primary"), TempDir::new("standby"));
    let mut primary = start_peer(&dir_a, "monitor-a", port_a, port_b, &mattermost);
    let standby = start_peer(&dir_b, "monitor-b", port_b, port_a, &format!("standby_for: monitor-a\n{mattermost}"));
    wait_for("the standby to hear its primary", || host(&standby, "monitor-a").filter(|h| h["status"] == "up"));

    // db1 talks to both, then stops: both see it down.
    let udp = client("127.0.0.1:0");
    heartbeat(&udp, primary.addr, "db1", 1.0, 1);
    heartbeat(&udp, standby.addr, "db1", 1.0, 1);
    for hbd in [&primary, &standby] {
        hbd.wait_journal("db1 down", |l| event_of(l, "host_down", "db1").is_some());
    }
    let about_db1 = || -> Vec<String> {
        let texts = standin.delivered("mattermost").into_iter().filter_map(|m| m["text"].as_str().map(String::from));
        texts.filter(|t| t.contains("db1")).collect()
    };
    wait_for("the primary's message", || (!about_db1().is_empty()).then_some(()));
    // The standby has seen db1 down too, and held it: its journal says
    // nothing was sent by it.
    assert!(standby.journal().iter().all(|l| l["type"] != "notification"), "the standby sent nothing");
    assert_eq!(about_db1().len(), 1, "one message while both run");

    primary.signal(libc::SIGKILL);
    let _ = primary.child.wait();
    // The primary's machine keeps running its hbc, under the same name:
    // that is not the primary hbd watching, and must not keep the standby quiet.
    let machine_runs = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let (running, to) = (machine_runs.clone(), standby.addr);
    let hbc = std::thread::spawn(move || {
        let socket = client("127.0.0.1:0");
        for seq in 100.. {
            if !running.load(std::sync::atomic::Ordering::SeqCst) {
                break;
            }
            let beat = format!(
                "{{\"ID\":\"HTB\",\"name\":\"monitor-a\",\"interval\":1,\"seq\":{seq},\"client\":\"hbc 0.1.0\"}}"
            );
            let _ = send_recv(&socket, to, beat.as_bytes());
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
    });
    // The primary's message about db1, then the standby's.
    let outstanding = wait_for("the standby's message", || about_db1().get(1).cloned());
    machine_runs.store(false, std::sync::atomic::Ordering::SeqCst);
    hbc.join().unwrap();
    assert!(outstanding.contains("held while monitor-a watched"), "{outstanding}");
    standby.wait_journal("the standby's delivery", |l| l["type"] == "notification" && l["delivered"] == true);
    assert_eq!(about_db1().len(), 2, "the primary's, then the standby's once: {:#?}", about_db1());
    standin.assert_no_violations();
}
