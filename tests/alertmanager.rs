//! hbd's alerts in a real Prometheus Alertmanager (Debian's
//! prometheus-alertmanager) on loopback, with a webhook receiver the test
//! runs: a firing alert arrives with its labels and resolves when the
//! metric recovers; two hbds and two clustered Alertmanagers give one
//! notification per event.

mod support;

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use support::*;

const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";

/// A rule for the test's plugin `gauge`.
const THRESHOLDS: &str = "thresholds:\n  gauge:\n    value:\n      warning: 80\n      critical: 90\n";

/// The webhook receiver: every notification Alertmanager posts.
struct Receiver {
    addr: SocketAddr,
    posts: Arc<Mutex<Vec<Value>>>,
    server: Arc<tiny_http::Server>,
}

impl Receiver {
    fn start() -> Receiver {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let addr = server.server_addr().to_ip().unwrap();
        let posts = Arc::new(Mutex::new(Vec::new()));
        let (s, p) = (server.clone(), posts.clone());
        std::thread::spawn(move || {
            for mut request in s.incoming_requests() {
                let mut body = String::new();
                let _ = request.as_reader().read_to_string(&mut body);
                if let Ok(mut value) = serde_json::from_str::<Value>(&body) {
                    value["received_at_test"] =
                        json!(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64());
                    p.lock().unwrap().push(value);
                }
                let _ = request.respond(tiny_http::Response::from_string("ok"));
            }
        });
        Receiver { addr, posts, server }
    }

    /// The notifications with this status (`firing`, `resolved`).
    fn with_status(&self, status: &str) -> Vec<Value> {
        self.posts.lock().unwrap().iter().filter(|p| p["status"] == status).cloned().collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One Alertmanager; with `cluster`, its own gossip port and its peer's.
struct Alertmanager {
    child: Child,
    url: String,
}

impl Alertmanager {
    /// Groups flush every 4 s, longer than a peer's wait (1 s) plus gossip:
    /// with a group_interval shorter than that, replicas that see a
    /// resolution on either side of a flush both announce it
    /// (prometheus/alertmanager#4008), whoever sends the alerts.
    fn start(dir: &TempDir, tag: &str, receiver: SocketAddr, cluster: Option<(u16, u16)>) -> Alertmanager {
        let config = dir.join(&format!("{tag}.yml"));
        std::fs::write(
            &config,
            format!(
                "route:\n  receiver: test\n  group_by: [alertname, host]\n  group_wait: 1s\n  group_interval: 4s\n  repeat_interval: 1h\n\
                 receivers:\n  - name: test\n    webhook_configs:\n      - url: http://{receiver}/hook\n        send_resolved: true\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let mut command = Command::new(ALERTMANAGER);
        command
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.join(tag).display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join(&format!("{tag}.log"))).unwrap());
        match cluster {
            Some((own, peer)) => command.args([
                format!("--cluster.listen-address=127.0.0.1:{own}"),
                format!("--cluster.advertise-address=127.0.0.1:{own}"),
                format!("--cluster.peer=127.0.0.1:{peer}"),
                "--cluster.peer-timeout=1s".into(),
                "--cluster.gossip-interval=100ms".into(),
                "--cluster.pushpull-interval=1s".into(),
            ]),
            None => command.arg("--cluster.listen-address="),
        };
        let child = command.spawn().expect("prometheus-alertmanager is installed (tests/run installs it)");
        let mut am = Alertmanager { child, url: format!("http://127.0.0.1:{port}") };
        let ready = SocketAddr::from(([127, 0, 0, 1], port));
        // Listening first (http_request wants a server), then ready. One
        // that exits (a port taken meanwhile) is reported with its log.
        let log = dir.join(&format!("{tag}.log"));
        wait_for("Alertmanager to listen", || {
            if let Ok(Some(status)) = am.child.try_wait() {
                panic!("Alertmanager {tag} exited ({status}):\n{}", std::fs::read_to_string(&log).unwrap_or_default());
            }
            std::net::TcpStream::connect(ready).ok()
        });
        wait_for("Alertmanager to be ready", || (http_request(ready, "GET", "/-/ready", &[]).0 == 200).then_some(()));
        am
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

/// A heartbeat of db1 with the gauge at `value`, to each hbd.
fn gauge(to: &[&Hbd], seq: u64, value: f64) {
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let message = json!({"ID": "HTB", "name": "db1", "interval": 60, "seq": seq,
        "plugins": {"gauge": {"kind": "monitor", "at": now(), "data": {"value": value}}}});
    for hbd in to {
        send_once(&udp, hbd.addr, &message);
    }
}

fn start_hbd(dir: &TempDir, name: &str, urls: &[&str]) -> Hbd {
    let urls: Vec<String> = urls.iter().map(|u| format!("'{u}'")).collect();
    let am = format!("alertmanager:\n  urls: [{}]\n  resend_interval: 10\n", urls.join(", "));
    Hbd::start(dir, &format!("hbd_name: {name}\n{THRESHOLDS}{am}"))
}

#[test]
fn a_firing_alert_arrives_with_its_labels_and_resolves_when_the_metric_recovers() {
    let dir = TempDir::new("alertmanager");
    let receiver = Receiver::start();
    let am = Alertmanager::start(&dir, "am", receiver.addr, None);
    let hbd = start_hbd(&dir, "monitor1", &[&am.url]);
    gauge(&[&hbd], 1, 95.0);
    let firing = wait_for("a firing notification", || receiver.with_status("firing").into_iter().next());
    let alert = &firing["alerts"][0];
    assert_eq!(alert["labels"]["alertname"], "PluginAlert");
    assert_eq!(alert["labels"]["host"], "db1");
    assert_eq!(alert["labels"]["plugin"], "gauge");
    assert_eq!(alert["labels"]["metric"], "value");
    assert_eq!(alert["labels"]["severity"], "critical");
    assert!(alert["annotations"]["summary"].as_str().unwrap().contains("gauge.value = 95.0"), "{alert}");
    assert!(alert["generatorURL"].as_str().unwrap().ends_with("/hosts/db1"), "{alert}");
    // Journaled as a delivery like any notification.
    hbd.wait_journal("the delivery to Alertmanager", |l| {
        l["type"] == "notification" && l["service"] == "alertmanager" && l["delivered"] == true
    });

    gauge(&[&hbd], 2, 10.0);
    let resolved = wait_for("a resolved notification", || receiver.with_status("resolved").into_iter().next());
    assert_eq!(resolved["alerts"][0]["labels"]["host"], "db1");
    assert_eq!(resolved["alerts"][0]["status"], "resolved");
    let (_, _, metrics) = http_request(hbd.http, "GET", "/metrics", &[]);
    assert!(metrics.contains("hbd_notifications_sent_total{service=\"alertmanager\"}"), "{metrics}");
}

#[test]
fn two_hbds_and_two_clustered_alertmanagers_notify_once_per_event() {
    let dir = TempDir::new("alertmanager-ha");
    let receiver = Receiver::start();
    let (gossip1, gossip2) = (free_port(), free_port());
    let am1 = Alertmanager::start(&dir, "am1", receiver.addr, Some((gossip1, gossip2)));
    let am2 = Alertmanager::start(&dir, "am2", receiver.addr, Some((gossip2, gossip1)));
    let (dir_a, dir_b) = (TempDir::new("am-hbd-a"), TempDir::new("am-hbd-b"));
    let a = start_hbd(&dir_a, "monitor-a", &[&am1.url, &am2.url]);
    let b = start_hbd(&dir_b, "monitor-b", &[&am1.url, &am2.url]);

    gauge(&[&a, &b], 1, 95.0);
    wait_for("a firing notification", || receiver.with_status("firing").into_iter().next());
    // The second Alertmanager waits its peer timeout (1 s) to see whether
    // the first has notified; give it a group interval (4 s) and more to
    // send a duplicate.
    let quiet_until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < quiet_until {
        assert_eq!(receiver.with_status("firing").len(), 1, "one firing notification for four senders");
        std::thread::sleep(Duration::from_millis(100));
    }

    gauge(&[&a, &b], 2, 10.0);
    wait_for("a resolved notification", || receiver.with_status("resolved").into_iter().next());
    let quiet_until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < quiet_until {
        let resolved = receiver.with_status("resolved");
        let summary: Vec<String> = resolved
            .iter()
            .map(|p| format!("from {} at {}: {}", p["externalURL"], p["received_at_test"], p["alerts"][0]["endsAt"]))
            .collect();
        assert_eq!(resolved.len(), 1, "one resolved notification: {summary:#?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(receiver.with_status("firing").len(), 1);
}
