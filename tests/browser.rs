//! The web UI in a real browser: headless Chromium, driven over the DevTools
//! protocol, loads /live and /plugins from a running hbd. Screenshots are
//! kept in target/screenshots/ for a person to look at.

mod support;

use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use support::*;
use tungstenite::{Message, WebSocket};

/// A headless Chromium and one page of it, spoken to over DevTools.
struct Browser {
    child: Child,
    socket: WebSocket<TcpStream>,
    session: String,
    next_id: u64,
    /// Exceptions and console errors the page reported.
    errors: Vec<String>,
    /// Answers the browser gets instead of hbd's: a path (with its query)
    /// and a JSON body, for the members other parts of hbd add.
    fakes: Vec<(String, Value)>,
    _profile: TempDir,
}

impl Browser {
    fn launch() -> Browser {
        let profile = TempDir::new("chromium");
        let child = Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-port=0",
                "--window-size=1200,800",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromium is installed (tests/run installs Debian's chromium)");
        let active = profile.join("DevToolsActivePort");
        let (port, path) = wait_for("chromium's DevTools port", || {
            let text = fs::read_to_string(&active).ok()?;
            let mut lines = text.lines();
            Some((lines.next()?.parse::<u16>().ok()?, lines.next()?.to_string()))
        });
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        // The handshake gets the whole deadline (a busy machine is slow to
        // answer); reads after it wake every 200 ms to look at the deadline.
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        let (socket, _) =
            tungstenite::client(format!("ws://127.0.0.1:{port}{path}"), stream).expect("DevTools handshake");
        socket.get_ref().set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let mut browser = Browser {
            child,
            socket,
            session: String::new(),
            next_id: 0,
            errors: Vec::new(),
            fakes: Vec::new(),
            _profile: profile,
        };
        let target = browser.call("Target.createTarget", json!({"url": "about:blank"}));
        let attached = browser.call("Target.attachToTarget", json!({"targetId": target["targetId"], "flatten": true}));
        browser.session = attached["sessionId"].as_str().unwrap().to_string();
        for domain in ["Runtime.enable", "Page.enable", "Log.enable"] {
            browser.call(domain, json!({}));
        }
        browser
    }

    /// Sends a command (to the page once attached) and returns its result,
    /// noting errors from the events that arrive meanwhile.
    fn call(&mut self, method: &str, params: Value) -> Value {
        match self.try_call(method, params) {
            Ok(result) => result,
            Err(error) => panic!("{method}: {error}"),
        }
    }

    /// [`Browser::call`], with the error DevTools answered, if any.
    fn try_call(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut command = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            command["sessionId"] = json!(self.session);
        }
        self.socket.send(Message::text(command.to_string())).expect("send to DevTools");
        let deadline = Instant::now() + DEADLINE;
        loop {
            assert!(Instant::now() < deadline, "no answer to {method}");
            let text = match self.socket.read() {
                Ok(Message::Text(text)) => text,
                Ok(_) => continue,
                Err(tungstenite::Error::Io(e))
                    if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) =>
                {
                    continue
                }
                Err(e) => panic!("DevTools: {e}"),
            };
            let message: Value = serde_json::from_str(&text).unwrap();
            self.note_error(&message);
            if message["method"] == "Fetch.requestPaused" {
                self.answer_paused(&message["params"]);
            }
            if message["id"] == id {
                return match message.get("error") {
                    Some(error) => Err(error.clone()),
                    None => Ok(message["result"].clone()),
                };
            }
        }
    }

    /// From now on, a GET of `path` (with its query) gets `body` instead of
    /// what hbd would answer.
    fn fake(&mut self, path: &str, body: Value) {
        self.fakes.retain(|(p, _)| p != path);
        self.fakes.push((path.to_string(), body));
        let patterns: Vec<Value> = self.fakes.iter().map(|(p, _)| json!({"urlPattern": format!("*{p}")})).collect();
        self.call("Fetch.enable", json!({"patterns": patterns}));
    }

    /// A request the browser paused for [`Browser::fake`]: answered with
    /// the fake when its path is one, else sent on to hbd.
    fn answer_paused(&mut self, params: &Value) {
        let url = params["request"]["url"].as_str().unwrap_or_default();
        let path = url.splitn(4, '/').nth(3).map(|p| format!("/{p}")).unwrap_or_default();
        let fake = self.fakes.iter().find(|(p, _)| *p == path).map(|(_, body)| body.to_string());
        self.next_id += 1;
        let command = match fake {
            Some(body) => json!({"id": self.next_id, "method": "Fetch.fulfillRequest", "sessionId": self.session,
                "params": {"requestId": params["requestId"], "responseCode": 200,
                    "responseHeaders": [{"name": "Content-Type", "value": "application/json"}],
                    "body": base64_encode(body.as_bytes())}}),
            None => json!({"id": self.next_id, "method": "Fetch.continueRequest", "sessionId": self.session,
                "params": {"requestId": params["requestId"]}}),
        };
        self.socket.send(Message::text(command.to_string())).expect("send to DevTools");
    }

    fn note_error(&mut self, event: &Value) {
        let params = &event["params"];
        match event["method"].as_str() {
            Some("Runtime.exceptionThrown") => self.errors.push(params["exceptionDetails"].to_string()),
            Some("Runtime.consoleAPICalled") if params["type"] == "error" => {
                self.errors.push(params["args"].to_string())
            }
            Some("Log.entryAdded") if params["entry"]["level"] == "error" => {
                self.errors.push(params["entry"]["text"].to_string())
            }
            _ => {}
        }
    }

    fn navigate(&mut self, url: &str) {
        self.call("Page.navigate", json!({"url": url}));
    }

    fn eval(&mut self, expression: &str) -> Value {
        let result = self.call("Runtime.evaluate", json!({"expression": expression, "returnByValue": true}));
        result["result"]["value"].clone()
    }

    /// Waits until `expression` evaluates to true in the page. While the
    /// page loads (after a reload or a link it followed) there is nothing
    /// to evaluate in: not yet true.
    fn wait_true(&mut self, what: &str, expression: &str) {
        let deadline = Instant::now() + DEADLINE;
        let params = json!({"expression": expression, "returnByValue": true});
        while self.try_call("Runtime.evaluate", params.clone()).map(|r| r["result"]["value"].clone()) != Ok(json!(true))
        {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Renders the page as a phone (or a desktop) of this size would.
    fn viewport(&mut self, width: u32, height: u32, mobile: bool) {
        let metrics = json!({"width": width, "height": height, "deviceScaleFactor": if mobile { 2 } else { 1 }, "mobile": mobile});
        self.call("Emulation.setDeviceMetricsOverride", metrics);
    }

    fn screenshot(&mut self, name: &str) -> PathBuf {
        let shot = self.call("Page.captureScreenshot", json!({"format": "png"}));
        let png = base64_decode(shot["data"].as_str().unwrap());
        assert!(png.starts_with(b"\x89PNG"));
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("../screenshots");
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        fs::write(&path, png).unwrap();
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            out.push(if i <= chunk.len() { ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char } else { '=' });
        }
    }
    out
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let bytes: Vec<u8> = text.bytes().filter(|c| *c != b'=').map(value).collect();
    bytes
        .chunks(4)
        .flat_map(|chunk| {
            let n = chunk.iter().enumerate().fold(0u32, |n, (i, v)| n | u32::from(*v) << (18 - 6 * i));
            let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
            bytes.into_iter().take(chunk.len() - 1)
        })
        .collect()
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

fn send(hbd: &Hbd, message: Value) {
    let udp = client("127.0.0.1:0");
    wait_for("ACK", || send_recv(&udp, hbd.addr, message.to_string().as_bytes()));
}

#[test]
fn live_and_plugins_pages_in_chromium() {
    let dir = TempDir::new("browser");
    let hbd = Hbd::start(&dir, "");
    for (i, load) in [0.5, 0.75, 1.25].iter().enumerate() {
        send(
            &hbd,
            json!({"ID": "HTB", "name": "web1", "interval": 30, "seq": i, "latency_ms": 0.8,
            "plugins": {
                "cpu_monitor": {"kind": "monitor", "at": now() + i as f64, "data": {"cpu_percent": 10.0 + i as f64, "load_1min": load}},
                "os_info": {"kind": "info", "at": now(), "data": {"os": "linux", "note": "<img src=x onerror=alert(1)>"}},
            }}),
        );
    }
    heartbeat(&client("127.0.0.1:0"), hbd.addr, "db1", 30.0, 9);

    let mut browser = Browser::launch();
    let base = format!("http://{}", hbd.http);
    browser.navigate(&format!("{base}/live"));
    browser.wait_true("both hosts on /live", "document.querySelectorAll('#hosts-body .vrow').length === 2");
    browser.wait_true("the live connection", "document.getElementById('connection').textContent === 'live'");
    let web1 = browser.eval(
        "[...document.querySelectorAll('#hosts-body .vrow')].find(r => r.children[0].textContent === 'web1').innerText",
    );
    let web1 = web1.as_str().unwrap();
    assert!(web1.contains("up") && web1.contains("0.80 ms") && web1.contains("127.0.0.1"), "{web1}");

    // A host that appears after the page loaded shows up by itself.
    heartbeat(&client("127.0.0.1:0"), hbd.addr, "late-comer", 30.0, 10);
    browser.wait_true(
        "late-comer on /live",
        "[...document.querySelectorAll('#hosts-body .vrow a')].some(a => a.textContent === 'late-comer')",
    );
    browser.wait_true("the feed", "document.getElementById('feed').textContent.includes('new host late-comer')");
    let shot = browser.screenshot("live.png");

    browser.navigate(&format!("{base}/plugins?host=web1&plugin=os_info"));
    browser.wait_true("os_info values", "document.querySelectorAll('#values tbody tr').length === 2");
    let note = browser.eval("[...document.querySelectorAll('#values td')].map(td => td.textContent).join('|')");
    assert!(note.as_str().unwrap().contains("\"<img src=x onerror=alert(1)>\""), "shown as text: {note}");
    assert_eq!(browser.eval("document.querySelectorAll('img').length"), json!(0), "no markup from plugin data");

    browser.navigate(&format!("{base}/plugins?host=web1&plugin=cpu_monitor"));
    browser.wait_true("cpu charts", "document.querySelectorAll('#charts svg polyline').length === 2");
    assert_eq!(browser.eval("document.getElementById('plugin').value"), json!("cpu_monitor"));
    // A new sample extends the chart without a reload.
    send(
        &hbd,
        json!({"ID": "PLG", "name": "web1", "seq": 20,
            "plugins": {"cpu_monitor": {"kind": "monitor", "at": now() + 10.0, "data": {"cpu_percent": 55.5, "load_1min": 2.0}}}}),
    );
    browser.wait_true(
        "the live sample",
        "[...document.querySelectorAll('#values td')].some(td => td.textContent === '55.5 %')",
    );
    browser.screenshot("plugins.png");

    assert!(browser.errors.is_empty(), "the pages logged errors: {:#?}", browser.errors);
    assert!(shot.exists());
}

#[test]
fn live_page_reconnects_after_hbd_restarts() {
    let dir = TempDir::new("browser-restart");
    let mut hbd = Hbd::start(&dir, "");
    heartbeat(&client("127.0.0.1:0"), hbd.addr, "before", 30.0, 1);
    let mut browser = Browser::launch();
    browser.navigate(&format!("http://{}/live", hbd.http));
    browser.wait_true("the live connection", "document.getElementById('connection').textContent === 'live'");
    let (http_port, ws_port) = (hbd.http.port(), hbd.ws.port());
    assert!(hbd.stop().success());
    browser.wait_true("the page to notice", "document.getElementById('connection').textContent === 'reconnecting…'");

    // The same ports again, as after a restart by the service manager.
    let config = dir.join("hbd.yaml");
    let yaml = base_config(dir.path(), "127.0.0.1")
        .replace("hbd_port: 0\nws_port: 0\n", &format!("hbd_port: {http_port}\nws_port: {ws_port}\n"));
    fs::write(&config, yaml).unwrap();
    let mut hbd = Hbd::start_with_config(&dir, &config);
    assert_eq!((hbd.http.port(), hbd.ws.port()), (http_port, ws_port));
    browser.wait_true("the page to reconnect", "document.getElementById('connection').textContent === 'live'");
    heartbeat(&client("127.0.0.1:0"), hbd.addr, "after", 30.0, 2);
    browser.wait_true(
        "a host sent after the restart",
        "[...document.querySelectorAll('#hosts-body .vrow a')].some(a => a.textContent === 'after')",
    );
    assert!(hbd.stop().success());
    assert!(
        browser.errors.iter().all(|e| e.contains("WebSocket") || e.contains("net::ERR_")),
        "only the expected connection errors: {:#?}",
        browser.errors
    );
}

#[test]
fn alerts_page_in_chromium() {
    let dir = TempDir::new("alertspage");
    let thresholds =
        "thresholds:\n  evil:\n    '*': {warning: 1, critical: 10}\n  cpu_monitor:\n    cpu_percent: {warning: 80}\n";
    let hbd = Hbd::start(&dir, thresholds);
    let hostile = "<img src=x onerror=alert(1)>";
    send(
        &hbd,
        json!({"ID": "HTB", "name": "web1", "interval": 30, "seq": 1,
            "plugins": {"evil": {"kind": "monitor", "at": now(), "data": {hostile: 50}}}}),
    );
    send(
        &hbd,
        json!({"ID": "HTB", "name": "db1", "interval": 30, "seq": 2,
            "plugins": {"cpu_monitor": {"kind": "monitor", "at": now(), "data": {"cpu_percent": 85.0}}}}),
    );

    let mut browser = Browser::launch();
    let base = format!("http://{}", hbd.http);
    browser.navigate(&format!("{base}/alerts"));
    browser.wait_true("both alerts", "document.querySelectorAll('#alerts tbody tr').length === 2");
    assert_eq!(browser.eval("document.getElementById('n-critical').textContent"), json!("1"));
    assert_eq!(browser.eval("document.getElementById('n-warning').textContent"), json!("1"));
    let first = browser.eval("document.querySelector('#alerts tbody tr').innerText");
    let first = first.as_str().unwrap();
    assert!(
        first.starts_with("CRITICAL") && first.contains("web1") && first.contains(hostile),
        "worst first, as text: {first}"
    );
    assert_eq!(browser.eval("document.querySelectorAll('img').length"), json!(0), "no markup from client data");
    let link = browser.eval("document.querySelector('#alerts tbody tr a').getAttribute('href')");
    assert_eq!(link, json!("/hosts/web1"), "each host links to its page");

    // Filters.
    browser.eval(
        "{ const s = document.getElementById('severity'); s.value = 'WARNING'; s.dispatchEvent(new Event('change')); }",
    );
    browser.wait_true("the warning only", "document.querySelectorAll('#alerts tbody tr').length === 1");
    browser
        .eval("{ const s = document.getElementById('severity'); s.value = ''; s.dispatchEvent(new Event('change')); }");
    browser.eval(
        "{ const h = document.getElementById('host-filter'); h.value = 'db'; h.dispatchEvent(new Event('input')); }",
    );
    browser.wait_true("db1 only", "document.querySelector('#alerts tbody tr').innerText.includes('db1') && document.querySelectorAll('#alerts tbody tr').length === 1");
    browser.eval(
        "{ const h = document.getElementById('host-filter'); h.value = ''; h.dispatchEvent(new Event('input')); }",
    );
    browser.wait_true("both again", "document.querySelectorAll('#alerts tbody tr').length === 2");

    // Live: a recovery arrives over the WebSocket and the list follows.
    browser.wait_true("the live connection", "document.getElementById('connection').textContent === 'live'");
    send(
        &hbd,
        json!({"ID": "HTB", "name": "db1", "interval": 30, "seq": 3,
            "plugins": {"cpu_monitor": {"kind": "monitor", "at": now() + 1.0, "data": {"cpu_percent": 5.0}}}}),
    );
    browser.wait_true(
        "db1 recovered",
        "document.querySelectorAll('#alerts tbody tr').length === 1 && document.getElementById('n-warning').textContent === '0'",
    );
    browser.wait_true("the feed", "document.getElementById('feed').textContent.includes('RECOVERED: db1')");
    browser.screenshot("alerts.png");

    // /live shows each host's alert level.
    browser.navigate(&format!("{base}/live"));
    browser.wait_true(
        "web1's level on /live",
        "[...document.querySelectorAll('#hosts-body .vrow')].some(r => r.children[0].textContent === 'web1' && r.children[2].textContent === 'CRITICAL')",
    );
    assert!(browser.errors.is_empty(), "the pages logged errors: {:#?}", browser.errors);
}

/// Issue 13: the overview puts problems on top and follows a host that goes
/// down; a host's page reads like a console (facts, Nagios checks in colour,
/// charts with time axes, units and thresholds, constants as values), at a
/// desktop's and a phone's width, with client data only ever shown as text.
#[test]
fn the_console_overview_and_host_pages_at_desktop_and_phone_widths() {
    let dir = TempDir::new("console");
    let hbd = Hbd::start(&dir, "grace: 0\nthresholds:\n  cpu_monitor:\n    cpu_percent: {warning: 80, critical: 90}\n");
    let hostile = "<img src=x onerror=alert(1)>";
    // Samples taken five minutes apart, as hbc's monitors take them.
    let t = now() - 900.0;
    for (i, cpu) in [20.0, 35.0, 30.0, 45.0].iter().enumerate() {
        send(
            &hbd,
            json!({"ID": "HTB", "name": "web1", "interval": 30, "seq": i, "latency_ms": 0.5 + i as f64 / 10.0,
            "plugins": {
                "cpu_monitor": {"kind": "monitor", "at": t + 300.0 * i as f64, "data": {"cpu_percent": cpu, "cpu_count": 2}},
                "memory_monitor": {"kind": "monitor", "at": t + 300.0 * i as f64, "data": {"percent": 40.0 + i as f64, "total_mb": 2048.0}},
                "os_info": {"kind": "info", "at": t, "data": {"name": "Debian GNU/Linux", "version": "12", "kernel": "6.1.0-18-amd64", "architecture": "x86_64", "boot_time": t - 90000.0}},
                "nagios_runner": {"kind": "monitor", "at": t + 300.0 * i as f64, "data": {"checks": {
                    "check_disk": {"exit_code": 2, "status": "CRITICAL", "output": "DISK CRITICAL - / 97% used", "perfdata": {"/": {"label": "/", "value": 97.0, "uom": "%", "warn": {"start": 0.0, "end": 80.0, "inside": false}, "crit": {"start": 0.0, "end": 90.0, "inside": false}}}},
                    "check_load": {"exit_code": 0, "status": "OK", "output": "LOAD OK", "perfdata": {}}}}},
                "evil": {"kind": "monitor", "at": t + 300.0 * i as f64, "data": {hostile: hostile}},
            }}),
        );
    }
    send(
        &hbd,
        json!({"ID": "HTB", "name": "db1", "interval": 30, "seq": 9,
            "plugins": {"cpu_monitor": {"kind": "monitor", "at": t, "data": {"cpu_percent": 95.0}}}}),
    );

    let mut browser = Browser::launch();
    let base = format!("http://{}", hbd.http);
    browser.navigate(&format!("{base}/"));
    browser.wait_true("the live connection", "document.getElementById('connection').textContent === 'live'");
    browser.wait_true("both hosts", "document.querySelectorAll('#hosts-body .vrow').length === 2");
    // Problems: db1's CRITICAL (and web1's Nagios CRITICAL); healthy count.
    browser
        .wait_true("db1 among the problems", "document.querySelector('#problems tbody').textContent.includes('db1')");
    assert_eq!(browser.eval("document.getElementById('n-down').textContent"), json!("0"));

    // A host that goes down moves to the top.
    heartbeat(&client("127.0.0.1:0"), hbd.addr, "flaky", 1.0, 1);
    browser.wait_true(
        "flaky on top of the problems, down",
        "(() => { const r = document.querySelector('#problems tbody tr'); return !!r && r.cells[0].textContent === 'flaky' && r.cells[1].textContent === 'DOWN'; })()",
    );
    assert_eq!(browser.eval("document.getElementById('n-down').textContent"), json!("1"));
    assert_eq!(
        browser.eval("document.querySelector('#hosts-body .vrow').children[0].textContent"),
        json!("flaky"),
        "down hosts lead the host list too"
    );
    // Filters.
    browser.eval("document.querySelector('#status-filters [data-status=ok]').click()");
    browser.wait_true("the healthy filter", "document.querySelectorAll('#hosts-body .vrow').length === 0 || [...document.querySelectorAll('#hosts-body .vrow')].every(r => r.children[2].textContent === 'OK')");
    browser.eval("document.querySelector('#status-filters [data-status=\"\"]').click()");
    browser
        .eval("{ const f = document.getElementById('filter'); f.value = 'db'; f.dispatchEvent(new Event('input')); }");
    browser.wait_true("the text filter", "document.querySelectorAll('#hosts-body .vrow').length === 1");
    browser.screenshot("overview.png");
    browser.viewport(390, 844, true);
    browser.navigate(&format!("{base}/"));
    browser.wait_true("the overview on a phone", "document.querySelectorAll('#hosts-body .vrow').length === 3");
    assert_eq!(
        browser.eval("document.documentElement.scrollWidth <= window.innerWidth"),
        json!(true),
        "no sideways scrolling of the page"
    );
    browser.screenshot("overview-phone.png");

    // The host page.
    browser.viewport(1200, 900, false);
    browser.navigate(&format!("{base}/hosts/web1"));
    browser.wait_true("web1's facts", "document.getElementById('facts').textContent.includes('6.1.0-18-amd64')");
    let facts = browser.eval("document.getElementById('facts').innerText");
    let facts = facts.as_str().unwrap();
    for expected in ["Debian GNU/Linux 12", "x86_64", "1 d 1 h", "127.0.0.1", "100 % (24 h)"] {
        assert!(facts.contains(expected), "{expected:?} in {facts}");
    }
    browser.wait_true("the Nagios table", "document.querySelectorAll('#nagios tbody tr').length === 2");
    assert_eq!(
        browser.eval("document.querySelector('#nagios tbody tr td.level-CRITICAL').textContent"),
        json!("CRITICAL")
    );
    let perf = browser.eval("document.querySelector('#nagios tbody').textContent");
    assert!(perf.as_str().unwrap().contains("/=97% (warn 80, crit 90)"), "{perf}");
    browser.wait_true("charts", "document.querySelectorAll('#plugin-cpu_monitor figure').length === 1");
    let caption = browser.eval("document.querySelector('#plugin-cpu_monitor figcaption').textContent");
    assert_eq!(caption, json!("cpu_percent (%)"), "units in the chart");
    assert!(
        browser.eval("document.querySelectorAll('#plugin-cpu_monitor svg text.tick').length").as_u64() >= Some(5),
        "axes with labels"
    );
    assert_eq!(
        browser.eval("document.querySelectorAll('#plugin-cpu_monitor line.threshold').length"),
        json!(2),
        "warning and critical drawn"
    );
    let constants = browser.eval("document.querySelector('#plugin-cpu_monitor dl').textContent");
    assert!(constants.as_str().unwrap().contains("cpu_count"), "a constant is a value, not a chart: {constants}");
    assert!(browser
        .eval("document.querySelector('#plugin-memory_monitor dl').textContent")
        .as_str()
        .unwrap()
        .contains("2 GiB"));
    assert_eq!(browser.eval("document.querySelectorAll('#latency figure').length"), json!(1), "a latency chart");
    assert!(browser.eval("document.getElementById('plugin-evil').textContent").as_str().unwrap().contains(hostile));
    assert_eq!(browser.eval("document.querySelectorAll('img').length"), json!(0), "client data only as text");
    browser.screenshot("host.png");
    browser.viewport(390, 844, true);
    browser.navigate(&format!("{base}/hosts/web1"));
    browser.wait_true("the host page on a phone", "document.querySelectorAll('#nagios tbody tr').length === 2");
    assert_eq!(
        browser.eval("document.documentElement.scrollWidth <= window.innerWidth"),
        json!(true),
        "no sideways scrolling of the page"
    );
    browser.screenshot("host-phone.png");
    assert!(browser.errors.is_empty(), "the pages logged errors: {:#?}", browser.errors);
}

/// A reverse proxy that passes HTTP but refuses WebSocket upgrades (403),
/// and points the pages' fallback `ws_port` at a closed port: a page
/// behind it can get no WebSocket at all.
fn http_only_proxy(hbd: std::net::SocketAddr) -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // A closed port with as many digits as hbd's ws port, so lengths stay.
    let closed = loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        if port >= 10000 {
            break port;
        }
    };
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut client = client;
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match client.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                if String::from_utf8_lossy(&head).to_ascii_lowercase().contains("upgrade: websocket") {
                    let _ =
                        client.write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                    return;
                }
                let Ok(mut upstream) = std::net::TcpStream::connect(hbd) else { return };
                let mut answer = Vec::new();
                if upstream.write_all(&head).is_err() || upstream.read_to_end(&mut answer).is_err() {
                    return;
                }
                // Bytes as they are (gzip stays gzip); in a page, the port replaced.
                let meta = b"name=\"hbd-ws-port\" content=\"";
                if let Some(i) = answer.windows(meta.len()).position(|w| w == meta) {
                    let start = i + meta.len();
                    let end = start + answer[start..].iter().position(|&b| b == b'"').unwrap_or(0);
                    answer.splice(start..end, closed.to_string().into_bytes());
                }
                let _ = client.write_all(&answer);
            });
        }
    });
    addr
}

/// Issue 20: a notification service hbd cannot deliver to is a notice on
/// the overview, naming it and what it lacks, as text; none while every
/// service is usable.
#[test]
fn the_overview_names_a_notification_service_that_is_not_usable() {
    let dir = TempDir::new("notify-notice");
    // The variable's name is hostile HTML: it must show as text.
    let hbd = Hbd::start(&dir, "pushsrv: all\npushover: {token_env: '<img src=x id=injected>', user: u}\n");
    let mut browser = Browser::launch();
    browser.navigate(&format!("http://{}/", hbd.http));
    browser.wait_true("the notice", "!document.getElementById('notify-notice').hidden");
    let items = browser.eval("[...document.querySelectorAll('#notify-problems li')].map(li => li.textContent)");
    let items: Vec<&str> = items.as_array().unwrap().iter().map(|i| i.as_str().unwrap()).collect();
    assert_eq!(items.len(), 2, "{items:?}");
    assert_eq!(
        items[0],
        "mattermost is not usable, nothing is sent to it: no webhook_url (set MATTERMOST_WEBHOOK_URL in hbd's environment or give webhook_url, webhook_url_file or webhook_url_env in the mattermost: block)"
    );
    assert_eq!(
        items[1],
        "pushover is not usable, nothing is sent to it: token_env names <img src=x id=injected>, which is not set in hbd's environment"
    );
    assert_eq!(browser.eval("document.getElementById('injected') === null"), json!(true), "text, never HTML");
    assert_eq!(
        browser.eval("document.querySelector('#notify-notice h2').textContent"),
        json!("Some alerts are not sent")
    );
    browser.screenshot("overview-notify-notice.png");
    assert!(browser.errors.is_empty(), "{:#?}", browser.errors);

    // Every service usable: no notice.
    let dir = TempDir::new("notify-no-notice");
    // Nothing goes down here; were it to, Pushover is a closed port on loopback.
    let hbd = Hbd::start(
        &dir,
        "pushsrv: pushover\npushover: {token: t, user: u, url: 'http://127.0.0.1:9/1/messages.json'}\n",
    );
    heartbeat(&client("127.0.0.1:0"), hbd.addr, "web1", 30.0, 1);
    browser.navigate(&format!("http://{}/", hbd.http));
    // The page draws its hosts once its load, /healthz included, is done.
    browser.wait_true("the host", "document.querySelectorAll('#hosts-body .vrow').length === 1");
    assert_eq!(browser.eval("document.getElementById('notify-notice').hidden"), json!(true));
}

/// Issue 13: behind a proxy that passes only HTTP, the pages still show
/// current data over REST and say that they are not live.
#[test]
fn pages_poll_the_api_when_websockets_are_blocked() {
    let dir = TempDir::new("nows");
    let hbd = Hbd::start(&dir, "");
    heartbeat(&client("127.0.0.1:0"), hbd.addr, "first", 30.0, 1);
    let proxy = http_only_proxy(hbd.http);
    let mut browser = Browser::launch();
    browser.navigate(&format!("http://{proxy}/"));
    browser.wait_true("the first host over REST", "document.querySelectorAll('#hosts-body .vrow').length === 1");
    browser.wait_true(
        "the page to say it is not live",
        "document.getElementById('connection').textContent === 'not live: refreshing every 10 s'",
    );
    heartbeat(&client("127.0.0.1:0"), hbd.addr, "second", 30.0, 2);
    browser.wait_true(
        "a host sent after the page loaded, by polling",
        "document.querySelectorAll('#hosts-body .vrow').length === 2",
    );
    browser.screenshot("overview-not-live.png");
}

/// Issue 20: the overview's "Recent messages" and the alerts page's
/// "Recent alert changes" show the journal's last events as soon as the
/// page has loaded: behind a proxy that lets no WebSocket through, so they
/// can only have come from the server's /api/0/events. Then, live, a new
/// event joins them and none is shown twice.
#[test]
fn recent_events_come_from_the_journal_on_load_then_live() {
    let dir = TempDir::new("browser-recent");
    let hbd = Hbd::start(&dir, "grace: 0\nthresholds:\n  cpu_monitor:\n    cpu_percent: {warning: 80}\n");
    send(
        &hbd,
        json!({"ID": "HTB", "name": "web1", "interval": 30, "seq": 1,
            "plugins": {"cpu_monitor": {"kind": "monitor", "at": now(), "data": {"cpu_percent": 85.0}}}}),
    );
    heartbeat(&client("127.0.0.1:0"), hbd.addr, "flaky", 1.0, 2);
    let events = hbd.events_file();
    let in_events = |check: &dyn Fn(&Value) -> bool| journal_lines(events.parent().unwrap()).iter().any(check);
    wait_for("the events in the events journal", || {
        (in_events(&|l| event_of(l, "host_new", "web1").is_some())
            && in_events(&|l| l["type"] == "alert" && l["name"] == "web1")
            && in_events(&|l| event_of(l, "host_down", "flaky").is_some())
            && in_events(&|l| l["type"] == "alert" && l["name"] == "flaky"))
        .then_some(())
    });
    let written = journal_lines(&hbd.journal_dir()).len();

    let proxy = http_only_proxy(hbd.http);
    let mut browser = Browser::launch();
    browser.navigate(&format!("http://{proxy}/"));
    browser.wait_true("the hosts over REST", "document.querySelectorAll('#hosts-body .vrow').length === 2");
    let feed = |browser: &mut Browser| -> Vec<String> {
        let items = browser.eval("[...document.querySelectorAll('#feed li span')].map(s => s.textContent)");
        items.as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect()
    };
    browser.wait_true("the feed", "document.querySelectorAll('#feed li').length >= 5");
    let shown = feed(&mut browser);
    let expected_overview = [
        "flaky is down, silent for",
        "CRITICAL: flaky - host down",
        "WARNING: web1 - cpu_monitor.cpu_percent = 85.0",
        "new host flaky at 127.0.0.1",
        "new host web1 at 127.0.0.1",
    ];
    // Newest first; flaky's host_down and its alert come in the same second, either first.
    for expected in expected_overview {
        assert_eq!(shown.iter().filter(|t| t.starts_with(expected)).count(), 1, "{expected:?} once in {shown:?}");
    }
    assert_eq!(shown.len(), 5, "{shown:?}");
    // Older: web1's alert came with its first heartbeat, so after its host_new.
    assert!(shown[2].starts_with("new host flaky"), "{shown:?}");
    assert!(shown[3].starts_with("WARNING: web1") && shown[4].starts_with("new host web1"), "{shown:?}");
    let badge = browser.eval("document.getElementById('connection').textContent");
    assert!(badge != json!("live"), "no WebSocket ({badge}): the feed came from the journal");

    browser.navigate(&format!("http://{proxy}/alerts"));
    browser.wait_true("both alerts", "document.querySelectorAll('#alerts tbody tr').length === 2");
    browser.wait_true("the alert changes", "document.querySelectorAll('#feed li').length === 2");
    let changes = feed(&mut browser);
    assert!(changes[0].starts_with("CRITICAL: flaky - host down"), "{changes:?}");
    assert_eq!(changes[1], "WARNING: web1 - cpu_monitor.cpu_percent = 85.0");
    assert_eq!(
        browser.eval("document.querySelector('#feed li span').className"),
        json!("level-CRITICAL"),
        "coloured by level"
    );
    assert_eq!(journal_lines(&hbd.journal_dir()).len(), written, "nothing happened meanwhile");

    // Live: the journal's events, then a new one, each once.
    browser.navigate(&format!("http://{}/", hbd.http));
    browser.wait_true("the live connection", "document.getElementById('connection').textContent === 'live'");
    browser.wait_true("the feed", "document.querySelectorAll('#feed li').length === 5");
    // A WebSocket client of its own, to compare the live update with the journal's line.
    let stream = TcpStream::connect(hbd.ws).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let (mut ws, _) = tungstenite::client(format!("ws://{}/", hbd.ws), stream).expect("ws handshake");
    // Its snapshot first: from then on it is among the hub's clients, and
    // no update can pass it by.
    wait_for("the snapshot", || match ws.read() {
        Ok(Message::Text(text)) => text.contains("\"snapshot\"").then_some(()),
        _ => None,
    });
    heartbeat(&client("127.0.0.1:0"), hbd.addr, "late-comer", 30.0, 3);
    browser.wait_true("the live event", "document.getElementById('feed').textContent.includes('new host late-comer')");
    let live = wait_for("host_new over the WebSocket", || match ws.read() {
        Ok(Message::Text(text)) => serde_json::from_str::<Value>(&text).ok().filter(|m| m["type"] == "host_new"),
        _ => None,
    });
    let shown = feed(&mut browser);
    assert_eq!(shown.len(), 6, "the journal's five and the live one, none twice: {shown:?}");
    assert!(shown[0].starts_with("new host late-comer"), "{shown:?}");
    // A reload after the event reached the journal: the same six once each.
    let line = wait_for("late-comer in the events journal", || {
        journal_lines(&hbd.journal_dir()).into_iter().find(|l| event_of(l, "host_new", "late-comer").is_some())
    });
    // What the pages tell them apart by: the time and every other field.
    let fields = |v: &Value| {
        let mut map = v.as_object().unwrap().clone();
        let at = map.remove("at").or(map.remove("timestamp"));
        map.remove("datetime");
        (at, map)
    };
    assert_eq!(fields(&live), fields(&line), "the live update and the journal line are the same event");
    browser.navigate(&format!("http://{}/", hbd.http));
    browser.wait_true("the live connection", "document.getElementById('connection').textContent === 'live'");
    browser.wait_true("the feed", "document.querySelectorAll('#feed li').length === 6");
    assert_eq!(feed(&mut browser), shown);
    assert_eq!(browser.eval("document.querySelectorAll('img').length"), json!(0));
    assert!(
        browser.errors.iter().all(|e| e.contains("WebSocket") || e.contains("net::ERR_")),
        "only the proxy's refused WebSockets: {:#?}",
        browser.errors
    );
}

/// The UI benchmark (benches/ui.sh runs it; `--ignored`, never in CI): the
/// overview in Chromium with `UI_HOSTS` hosts (10,000 by default), first
/// quiet, then while `UI_RATE` heartbeats a second arrive (1,000 by
/// default). Prints, for each: the first contentful paint and the first
/// full render (the list shows rows and counts every host) after the
/// navigation started, the JS heap the page keeps (after a garbage
/// collection) and its renderer's RSS, and the main thread's busy time per
/// second while scrolling. The same-run references: `/healthz` loaded in
/// the same browser (a navigation's fixed cost) and the time the page
/// takes to fetch and parse the whole `/api/0/hosts`. Asserts nothing
/// about time.
#[test]
#[ignore = "a benchmark: run by benches/ui.sh"]
fn ui_benchmark_overview_at_n_hosts() {
    let number = |name: &str, default: u64| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let (hosts, rate) = (number("UI_HOSTS", 10_000), number("UI_RATE", 1_000));
    // Waits that a 100,000-host page needs: the tests' DEADLINE is for tests.
    let patience = Duration::from_secs(300);
    let dir = TempDir::new("uibench");
    let hbd = Hbd::start(&dir, "");
    let loadgen = |rate: u64, seconds: u64, count: Option<u64>| {
        Command::new(Path::new(env!("CARGO_BIN_EXE_hbd")).with_file_name("examples").join("loadgen"))
            .args(["--target", &hbd.addr.to_string(), "--hosts", &hosts.to_string()])
            .args(["--rate", &rate.to_string(), "--seconds", &seconds.to_string()])
            .args(count.map(|c| vec!["--count".to_string(), c.to_string()]).unwrap_or_default())
            .stdout(Stdio::null())
            .spawn()
            .expect("target/…/examples/loadgen (benches/ui.sh builds it)")
    };
    // Every host once (again, for datagrams the socket dropped), until hbd knows them all.
    let known = || get_json(hbd.http, "/healthz").1["hosts"].as_u64().unwrap_or(0);
    for _ in 0..5 {
        let mut fill = loadgen(20_000, 600, Some(hosts));
        let _ = fill.wait();
        let deadline = Instant::now() + Duration::from_secs(5);
        while known() < hosts && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        if known() >= hosts {
            break;
        }
    }
    assert_eq!(known(), hosts, "hbd knows every host");
    let mut browser = Browser::launch();
    browser.call("Performance.enable", json!({}));
    // Notes, in the page, the first frame in which the list shows rows and
    // counts every host: requestAnimationFrame runs once per frame, before it
    // is painted.
    let watch = format!(
        "(() => {{ const check = () => {{ const s = document.getElementById('shown'); \
         if (s && s.textContent === '{hosts}' && document.querySelector('#hosts-body .vrow')) \
         {{ window.__rendered = performance.now(); return; }} requestAnimationFrame(check); }}; \
         requestAnimationFrame(check); }})()"
    );
    browser.call("Page.addScriptToEvaluateOnNewDocument", json!({"source": watch}));
    let wait = |b: &mut Browser, what: &str, expression: &str| {
        let deadline = Instant::now() + patience;
        let params = json!({"expression": expression, "returnByValue": true});
        while b.try_call("Runtime.evaluate", params.clone()).map(|r| r["result"]["value"].clone()) != Ok(json!(true)) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let awaited = |b: &mut Browser, expression: &str| {
        let params = json!({"expression": expression, "returnByValue": true, "awaitPromise": true});
        b.call("Runtime.evaluate", params)["result"]["value"].clone()
    };
    let busy = |b: &mut Browser| {
        let metrics = b.call("Performance.getMetrics", json!({}));
        metrics["metrics"].as_array().unwrap().iter().find(|m| m["name"] == "TaskDuration").unwrap()["value"]
            .as_f64()
            .unwrap()
    };
    // Main-thread time per second over 10 s of scrolling, as a person would.
    let busy_per_second = |b: &mut Browser| {
        let (t0, b0) = (Instant::now(), busy(b));
        while t0.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(250));
            b.eval("document.getElementById('hosts').scrollTop += 300");
        }
        (busy(b) - b0) / t0.elapsed().as_secs_f64() * 1000.0
    };
    // What the page keeps: its JS heap after a collection, and the RSS of
    // the largest renderer process of this Chromium (the page's).
    let chromium = browser.child.id();
    let memory = |b: &mut Browser| {
        b.call("HeapProfiler.collectGarbage", json!({}));
        let heap = b.call("Runtime.getHeapUsage", json!({}))["usedSize"].as_f64().unwrap_or(0.0);
        (heap / 1048576.0, renderer_rss_mib(chromium, "VmRSS:"), renderer_rss_mib(chromium, "VmHWM:"))
    };
    // The references: /healthz (a navigation's fixed cost, as the page's
    // own requests see it), and the whole list fetched and parsed in a page.
    let started = Instant::now();
    browser.navigate(&format!("http://{}/healthz", hbd.http));
    wait(
        &mut browser,
        "/healthz",
        "document.readyState === 'complete' && document.body.textContent.includes('\"status\"')",
    );
    let healthz = started.elapsed().as_secs_f64() * 1000.0;
    let whole = awaited(
        &mut browser,
        "(async () => { const t = performance.now(); const r = await fetch('/api/0/hosts'); \
         const text = await r.text(); const list = JSON.parse(text); \
         return [performance.now() - t, text.length, list.hosts.length]; })()",
    );
    let mut figures = Vec::new();
    for (case, arriving) in [("quiet", 0), ("live", rate)] {
        let steady = (arriving > 0).then(|| loadgen(arriving, 600, None));
        browser.navigate("about:blank");
        // The renderer's peak RSS from here on (the reference's list is not the page's).
        reset_peak_rss(chromium);
        browser.navigate(&format!("http://{}/", hbd.http));
        wait(&mut browser, "the full list", "typeof window.__rendered === 'number'");
        let rendered = browser.eval("window.__rendered").as_f64().unwrap_or(f64::NAN);
        let paint = browser
            .eval("(performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime")
            .as_f64()
            .unwrap_or(f64::NAN);
        wait(&mut browser, "the live connection", "document.getElementById('connection').textContent === 'live'");
        let busy = busy_per_second(&mut browser);
        let (heap, rss, peak) = memory(&mut browser);
        let rows = browser.eval("document.querySelectorAll('#hosts-body .vrow').length");
        // What the page asked of the API by now (the WebSocket's frames aside).
        let asked = browser.eval(
            "(() => { const api = performance.getEntriesByType('resource').filter(r => r.name.includes('/api/0/hosts')); \
             return [api.length, api.reduce((n, r) => n + r.encodedBodySize, 0), api.reduce((n, r) => n + r.decodedBodySize, 0)]; })()",
        );
        if let Some(mut steady) = steady {
            let _ = steady.kill();
            let _ = steady.wait();
        }
        figures.push(format!(
            "ui benchmark: {hosts} hosts, {case} ({arriving} heartbeats/s): first contentful paint {paint:.0} ms, \
             first full render {rendered:.0} ms, JS heap {heap:.1} MiB, renderer RSS {rss:.0} MiB (peak {peak:.0}), \
             main thread busy {busy:.0} ms/s while scrolling, {rows} rows in the page, \
             {} requests to /api/0/hosts ({:.2} MB transferred, {:.2} MB of JSON)",
            asked[0],
            asked[1].as_f64().unwrap_or(0.0) / 1e6,
            asked[2].as_f64().unwrap_or(0.0) / 1e6
        ));
    }
    println!(
        "ui benchmark: {hosts} hosts, reference: /healthz loaded in {healthz:.0} ms; the whole /api/0/hosts \
         ({:.1} MB, {} hosts) fetched and parsed in the page in {:.0} ms; load average {}",
        whole[1].as_f64().unwrap_or(0.0) / 1e6,
        whole[2],
        whole[0].as_f64().unwrap_or(f64::NAN),
        fs::read_to_string("/proc/loadavg").unwrap_or_default().split(' ').take(3).collect::<Vec<_>>().join(" ")
    );
    for line in figures {
        println!("{line}");
    }
}

/// The renderer processes of the Chromium whose browser process is
/// `browser`, from /proc (its descendants with `--type=renderer`).
fn renderers(browser: u32) -> Vec<u32> {
    let mut processes = Vec::new();
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let stat = fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // The parent pid is the second field after the name's closing parenthesis.
        let parent = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        processes.push((pid, parent.unwrap_or(0)));
    }
    let mut family = vec![browser];
    let mut i = 0;
    while i < family.len() {
        let parent = family[i];
        family.extend(processes.iter().filter(|(_, p)| *p == parent).map(|(pid, _)| *pid));
        i += 1;
    }
    family
        .into_iter()
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default().windows(15).any(|w| w == b"--type=renderer")
        })
        .collect()
}

/// `field` of /proc/PID/status (`VmRSS:`, or `VmHWM:` for the peak) in MiB,
/// of the largest renderer of `browser` (the page's: the others show
/// about:blank); 0 where /proc says nothing.
fn renderer_rss_mib(browser: u32, field: &str) -> f64 {
    renderers(browser)
        .into_iter()
        .filter_map(|pid| {
            let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            let line = status.lines().find(|l| l.starts_with(field))?;
            line.split_whitespace().nth(1)?.parse::<f64>().ok()
        })
        .fold(0.0, f64::max)
        / 1024.0
}

/// Starts the renderers' peak RSS (`VmHWM`) afresh: 5 to clear_refs (root
/// or the processes' owner may; where it fails the peak is since their start).
fn reset_peak_rss(browser: u32) {
    for pid in renderers(browser) {
        let _ = fs::write(format!("/proc/{pid}/clear_refs"), "5");
    }
}

/// One meaning of "critical" in the console: the overview's tiles and the
/// alerts page count what `/api/0/alerts`' summary counts, for a down host
/// (one critical alert) whose own critical metric is held under it, a
/// critical metric of an up host and a warning; the held alert is shown
/// as held.
#[test]
fn the_consoles_counts_are_the_apis_with_down_hosts_and_held_alerts() {
    let dir = TempDir::new("counts");
    let hbd = Hbd::start(&dir, "grace: 0\nthresholds:\n  gauge:\n    value: {warning: 80, critical: 90}\n");
    let gauge = |name: &str, interval: f64, value: f64| {
        json!({"ID": "HTB", "name": name, "interval": interval, "seq": 1,
            "plugins": {"gauge": {"kind": "monitor", "at": now(), "data": {"value": value}}}})
    };
    send(&hbd, gauge("db1", 1.0, 96.0));
    send(&hbd, gauge("web1", 30.0, 95.0));
    send(&hbd, gauge("warm1", 30.0, 85.0));
    let summary = wait_for("db1 down with its gauge held", || {
        let (_, body) = get_json(hbd.http, "/api/0/alerts");
        let down = body["alerts"].as_array()?.iter().find(|a| a["plugin"] == "heartbeat")?.clone();
        (down["held"].as_array()?.len() == 1).then(|| body["summary"].clone())
    });
    assert_eq!(summary, json!({"ok": 0, "warning": 1, "critical": 2, "unknown": 0}));

    let mut browser = Browser::launch();
    let base = format!("http://{}", hbd.http);
    browser.navigate(&format!("{base}/"));
    browser.wait_true("one host down", "document.getElementById('n-down').textContent === '1'");
    browser.wait_true("the counts loaded", "document.getElementById('n-critical').textContent === '2'");
    let tiles = browser
        .eval("['critical', 'warning', 'unknown'].map(l => Number(document.getElementById(`n-${l}`).textContent))");
    assert_eq!(tiles, json!([summary["critical"], summary["warning"], summary["unknown"]]));
    browser.wait_true(
        "db1's gauge shown as held",
        "[...document.querySelectorAll('#problems tbody tr.problem-held')].some(r => r.textContent.includes('CRITICAL (held)') && r.textContent.includes('db1'))",
    );
    browser.screenshot("overview-held.png");

    browser.navigate(&format!("{base}/alerts"));
    browser.wait_true("the alerts page's counts", "document.getElementById('n-critical').textContent === '2'");
    assert_eq!(browser.eval("document.getElementById('n-warning').textContent"), json!("1"));
    browser.wait_true(
        "the held alert listed as held",
        "[...document.querySelectorAll('#alerts tbody tr.problem-held')].some(r => r.textContent.includes('db1'))",
    );
    browser.screenshot("alerts-held.png");
    assert!(browser.errors.is_empty(), "the pages logged errors: {:#?}", browser.errors);
}

const ADMIN: &str = "alice-admin-secret-0123";
const READER: &str = "bob-read-secret-0123456";

/// A tokens file (alice admin, bob read) and the config lines naming it.
fn with_tokens(dir: &TempDir, reads_need_token: bool) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("tokens");
    fs::write(&path, format!("alice admin {ADMIN}\nbob read {READER}\n")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    format!("api_tokens_file: {}\napi_reads_need_token: {}\n", path.display(), reads_need_token)
}

/// The page logged nothing but the answers it was meant to get: 401,
/// 403 and 404 (the browser logs each), and WebSockets refused without a token.
fn assert_only_refusals(errors: &[String]) {
    let expected = |e: &String| {
        ["401", "403", "404"]
            .iter()
            .any(|s| e.contains(&format!("Failed to load resource: the server responded with a status of {s}")))
            || (e.contains("WebSocket") && e.contains("HTTP Authentication failed"))
    };
    assert!(errors.iter().all(expected), "only the refusals asked for: {errors:#?}");
}

impl Browser {
    /// Types a token into the page's token field; the page loads again with it.
    fn paste_token(&mut self, secret: &str) {
        self.wait_true("the token field", "!!document.getElementById('token-form')");
        self.eval(&format!(
            "document.getElementById('token-input').value = {}; document.getElementById('token-form').requestSubmit()",
            json!(secret)
        ));
        self.wait_true("the page with its token", "!!document.getElementById('sign-out')");
    }

    fn sign_out(&mut self) {
        self.eval("document.getElementById('sign-out').click()");
        self.wait_true("the page without a token", "!!document.getElementById('token-form')");
    }

    /// Submits the open dialog `id` and waits for its error text.
    fn dialog_error(&mut self, id: &str) -> String {
        self.eval(&format!(
            "document.getElementById('{id}-error').hidden = true; document.getElementById('{id}-form').requestSubmit()"
        ));
        self.wait_true(
            &format!("{id}'s answer"),
            &format!("(() => {{ const e = document.getElementById('{id}-error'); return !!e && !e.hidden; }})()"),
        );
        self.eval(&format!("document.getElementById('{id}-error').textContent")).as_str().unwrap().to_string()
    }

    fn text(&mut self, expression: &str) -> String {
        self.eval(expression).as_str().unwrap_or_default().to_string()
    }
}

/// Issue 22: writes from the console. Without a token, with a read token
/// and with an admin token pasted into the page, "forget" on a host's page
/// says what it needs, what hbd refused, or forgets the host and goes to
/// the overview, where it is gone; a host hbd does not know is a 404 in
/// words. The token lives in localStorage until "sign out".
#[test]
fn an_admin_token_pasted_into_the_page_forgets_a_host_from_its_page() {
    let dir = TempDir::new("console-forget");
    let hbd = Hbd::start(&dir, &with_tokens(&dir, false));
    let udp = client("127.0.0.1:0");
    heartbeat(&udp, hbd.addr, "old1", 30.0, 1);
    heartbeat(&udp, hbd.addr, "keep1", 30.0, 2);
    let mut browser = Browser::launch();
    let base = format!("http://{}", hbd.http);
    browser.navigate(&format!("{base}/hosts/old1"));
    browser.wait_true("old1's facts", "document.getElementById('facts').textContent.includes('127.0.0.1')");
    let open_forget = "document.getElementById('forget').click()";

    browser.eval(open_forget);
    assert_eq!(browser.dialog_error("forget"), "forgetting a host needs an admin token: paste one above");
    browser.eval("document.getElementById('forget').close()");

    browser.paste_token(READER);
    assert_eq!(browser.eval("localStorage.getItem('hbd_token')"), json!(READER));
    browser.wait_true("old1's facts", "document.getElementById('facts').textContent.includes('127.0.0.1')");
    browser.eval(open_forget);
    assert_eq!(
        browser.dialog_error("forget"),
        "forgetting a host was refused: token bob may read, not write: writes need the admin role"
    );
    browser.eval("document.getElementById('forget').close()");
    browser.sign_out();
    assert_eq!(browser.eval("localStorage.getItem('hbd_token')"), json!(null));

    browser.paste_token(ADMIN);
    browser.wait_true("old1's facts", "document.getElementById('facts').textContent.includes('127.0.0.1')");
    browser.eval(open_forget);
    browser.wait_true("the confirmation", "document.getElementById('forget').open");
    assert!(browser.text("document.getElementById('forget').textContent").contains("Forget old1?"));
    browser.screenshot("host-forget.png");
    browser.eval("document.getElementById('forget-form').requestSubmit()");
    browser.wait_true("the overview", "location.pathname === '/'");
    browser.wait_true("keep1 alone on the overview", "document.querySelectorAll('#hosts-body .vrow').length === 1");
    assert_eq!(browser.eval("document.querySelector('#hosts-body .vrow').children[0].textContent"), json!("keep1"));
    hbd.wait_journal("old1 forgotten by alice", |l| {
        l["type"] == "host_forgotten" && l["name"] == "old1" && l["by"] == "alice"
    });
    assert_eq!(get_json(hbd.http, "/api/0/hosts/old1").0, 404);

    // Forgotten already: the page says so, and so does "forget".
    browser.navigate(&format!("{base}/hosts/old1"));
    browser.wait_true("the missing host", "!document.getElementById('missing').hidden");
    browser.eval(open_forget);
    assert_eq!(browser.dialog_error("forget"), "old1 is not known to hbd (forgotten already?)");

    // A hostile name in the address is text on the page and in the dialog.
    let hostile = "<img src=x onerror=alert(1)>";
    browser.navigate(&format!("{base}/hosts/%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E"));
    browser.wait_true("the missing host", "!document.getElementById('missing').hidden");
    assert_eq!(browser.eval("document.getElementById('name').textContent"), json!(hostile));
    browser.eval(open_forget);
    assert_eq!(browser.dialog_error("forget"), format!("{hostile} is not known to hbd (forgotten already?)"));
    assert_eq!(browser.eval("document.querySelector('#forget h2').textContent"), json!(format!("Forget {hostile}?")));
    assert_eq!(browser.eval("document.querySelectorAll('img').length"), json!(0), "text, never HTML");
    assert_only_refusals(&browser.errors);
}

/// Issue 22: with api_reads_need_token, the pages say plainly that they
/// need a token (and when the one they have is not taken), and with a
/// read token pasted in they work, live over the WebSocket (the token as
/// its subprotocol) included.
#[test]
fn where_reads_need_a_token_the_pages_ask_for_one_and_work_with_it() {
    let dir = TempDir::new("console-reads");
    let hbd = Hbd::start(&dir, &with_tokens(&dir, true));
    heartbeat(&client("127.0.0.1:0"), hbd.addr, "web1", 30.0, 1);
    let mut browser = Browser::launch();
    let base = format!("http://{}", hbd.http);
    let needs =
        "(() => { const n = document.getElementById('needs-token'); return !!n && !n.hidden && n.textContent; })()";
    for page in ["/", "/alerts", "/hosts/web1", "/plugins"] {
        browser.navigate(&format!("{base}{page}"));
        browser.wait_true(
            &format!("{page} asking for a token"),
            &format!("{needs} === 'this hbd needs a token to read; paste one above'"),
        );
    }
    browser.navigate(&format!("{base}/"));
    browser.wait_true("the notice", &format!("{needs} !== false"));
    browser.screenshot("overview-needs-token.png");
    assert_eq!(browser.eval("document.querySelectorAll('#hosts-body .vrow').length"), json!(0));

    browser.eval("localStorage.setItem('hbd_token', 'not-a-token-hbd-knows')");
    browser.navigate(&format!("{base}/"));
    browser.wait_true(
        "the page to say its token is not taken",
        &format!("{needs} === 'hbd does not take the token this page has; paste another above, or sign out'"),
    );
    browser.sign_out();

    browser.paste_token(READER);
    browser.wait_true("web1 with the token", "document.querySelectorAll('#hosts-body .vrow').length === 1");
    browser.wait_true("the live connection", "document.getElementById('connection').textContent === 'live'");
    assert_eq!(browser.eval("document.getElementById('needs-token').hidden"), json!(true));
    heartbeat(&client("127.0.0.1:0"), hbd.addr, "late-comer", 30.0, 2);
    browser.wait_true(
        "late-comer, live",
        "[...document.querySelectorAll('#hosts-body .vrow a')].some(a => a.textContent === 'late-comer')",
    );
    for (page, ready) in [
        ("/alerts", "document.getElementById('n-ok').textContent !== ''"),
        ("/hosts/web1", "document.getElementById('facts').textContent.includes('127.0.0.1')"),
        ("/plugins", "document.getElementById('needs-token').hidden"),
    ] {
        browser.navigate(&format!("{base}{page}"));
        browser.wait_true(&format!("{page} with the token"), ready);
        browser.wait_true(&format!("{page} live"), "document.getElementById('connection').textContent === 'live'");
        assert_eq!(browser.eval("document.getElementById('needs-token').hidden"), json!(true), "{page}");
    }
    assert_only_refusals(&browser.errors);
}

/// Issue 22: the silence and acknowledgement forms against an hbd that
/// has neither yet: each is prefilled from its alert, wants a comment, and
/// shows hbd's answer in words; the silences list says it is not
/// available. A hostile metric name and comment stay text.
#[test]
fn silence_and_acknowledge_forms_validate_and_show_what_hbd_answers() {
    let dir = TempDir::new("console-forms");
    let hbd =
        Hbd::start(&dir, &format!("{}thresholds:\n  evil:\n    '*': {{critical: 10}}\n", with_tokens(&dir, false)));
    let hostile = "<img src=x onerror=alert(1)>";
    send(
        &hbd,
        json!({"ID": "HTB", "name": "web1", "interval": 30, "seq": 1,
            "plugins": {"evil": {"kind": "monitor", "at": now(), "data": {hostile: 50}}}}),
    );
    let mut browser = Browser::launch();
    let base = format!("http://{}", hbd.http);
    browser.navigate(&format!("{base}/alerts"));
    browser.paste_token(ADMIN);
    browser.wait_true("the alert", "document.querySelectorAll('#alerts tbody tr').length === 1");
    browser.wait_true("the empty list of silences", "!document.getElementById('no-silences').hidden");

    let button = |label: &str| {
        format!("[...document.querySelectorAll('#alerts tbody button')].find(b => b.textContent === '{label}').click()")
    };
    browser.eval(&button("Silence…"));
    browser.wait_true("the silence form", "document.getElementById('silence').open");
    let prefilled =
        browser.eval("['host', 'plugin', 'metric'].map(f => document.getElementById(`silence-${f}`).value)");
    assert_eq!(prefilled, json!(["web1", "evil", hostile]), "prefilled from the alert");
    assert_eq!(browser.dialog_error("silence"), "a comment is required: say why");
    browser.eval("{ const d = document.getElementById('silence-duration'); d.value = 'custom'; d.dispatchEvent(new Event('change')); }");
    assert_eq!(browser.eval("document.getElementById('silence-custom').parentElement.hidden"), json!(false));
    browser.eval("document.getElementById('silence-custom').value = 'soon'");
    browser.eval(&format!("document.getElementById('silence-comment').value = {}", json!(hostile)));
    assert_eq!(browser.dialog_error("silence"), "a duration is a number of seconds or like 90m, 2h, 1d, 1h30m");
    browser.screenshot("alerts-silence-form.png");
    // Valid: the silence of the alert's metric is made, by alice, and listed.
    browser.eval("document.getElementById('silence-custom').value = '1h30m'");
    browser.eval("document.getElementById('silence-form').requestSubmit()");
    let silence = hbd.wait_journal("the silence, by alice", |l| l["type"] == "silence_added" && l["by"] == "alice");
    assert_eq!(
        (&silence["host"], &silence["plugin"], &silence["metric_path"]),
        (&json!("web1"), &json!("evil"), &json!(hostile))
    );
    assert_eq!(silence["ends_at"].as_f64().unwrap() - silence["starts_at"].as_f64().unwrap(), 5400.0);
    browser.wait_true(
        "the silence in the list, its comment as text",
        "[...document.querySelectorAll('#silences tbody td')].some(td => td.textContent === '<img src=x onerror=alert(1)>')",
    );
    browser.wait_true(
        "the alert marked silenced",
        "[...document.querySelectorAll('#alerts tbody .mark-silenced')].some(m => m.textContent.includes('by alice'))",
    );

    browser.eval(&button("Acknowledge…"));
    browser.wait_true("the acknowledgement form", "document.getElementById('ack').open");
    assert!(
        browser.text("document.querySelector('#ack h2').textContent").contains(hostile),
        "its title names the alert, as text"
    );
    assert_eq!(browser.dialog_error("ack"), "a comment is required: say who is on it");
    // Acknowledged by alice (the pasted token's name), the comment as text.
    browser.eval(&format!("document.getElementById('ack-comment').value = {}", json!(hostile)));
    browser.eval("document.getElementById('ack-form').requestSubmit()");
    browser.wait_true(
        "the acknowledgement on the alert's row",
        "[...document.querySelectorAll('#alerts tbody .mark-acknowledged')].some(m => m.textContent.includes('by alice') && m.textContent.includes('<img'))",
    );
    assert_eq!(browser.eval("!document.getElementById('ack')?.open"), json!(true), "the form closed");
    hbd.wait_journal("the acknowledgement, by alice", |l| l["type"] == "acknowledged" && l["by"] == "alice");

    // The same forms on the host page, for the host and for each alert.
    browser.navigate(&format!("{base}/hosts/web1"));
    browser.wait_true("web1's alert", "document.querySelectorAll('#alerts tbody tr').length === 1");
    browser.eval("document.getElementById('silence-this-host').click()");
    browser.wait_true("the silence form", "document.getElementById('silence').open");
    let prefilled =
        browser.eval("['host', 'plugin', 'metric'].map(f => document.getElementById(`silence-${f}`).value)");
    assert_eq!(prefilled, json!(["web1", "", ""]), "the whole host");
    browser.eval("document.getElementById('silence-comment').value = 'kernel <img src=y> update'");
    browser.eval("document.getElementById('silence-form').requestSubmit()");
    hbd.wait_journal("the host's silence", |l| l["type"] == "silence_added" && l["plugin"].is_null());
    browser.wait_true(
        "the host marked silenced on its page",
        "[...document.querySelectorAll('.mark-silenced')].some(m => m.textContent.includes('kernel <img src=y> update'))",
    );
    // Acknowledged on the alerts page: the host page offers to remove it.
    browser.eval(&button("remove ack"));
    hbd.wait_journal("the acknowledgement removed, by alice", |l| l["type"] == "ack_removed" && l["by"] == "alice");
    browser.wait_true(
        "the alert to be acknowledgeable again",
        "[...document.querySelectorAll('#alerts tbody button')].some(b => b.textContent === 'Acknowledge…')",
    );
    browser.eval(&button("Acknowledge…"));
    browser.wait_true("the acknowledgement form", "document.getElementById('ack').open");
    assert_eq!(browser.dialog_error("ack"), "a comment is required: say who is on it");
    assert_eq!(browser.eval("document.querySelectorAll('img').length"), json!(0), "text, never HTML");
    browser.eval("document.getElementById('ack').close()");

    // The host's silence shows on the overview, and both on /alerts, where
    // one is ended.
    browser.navigate(&format!("{base}/"));
    browser.wait_true(
        "web1 marked silenced on the overview",
        "[...document.querySelectorAll('.mark-silenced')].some(m => m.textContent.includes('kernel <img src=y> update') || m.title.includes('kernel <img src=y> update'))",
    );
    browser.screenshot("overview-silenced.png");
    browser.navigate(&format!("{base}/alerts"));
    browser.wait_true("both silences listed", "document.querySelectorAll('#silences tbody tr').length === 2");
    browser.eval("[...document.querySelectorAll('#silences tbody button')].find(b => b.textContent === 'end').click()");
    hbd.wait_journal("a silence ended by alice", |l| l["type"] == "silence_ended" && l["by"] == "alice");
    browser.wait_true("one silence left", "document.querySelectorAll('#silences tbody tr').length === 1");
    assert_eq!(browser.eval("document.querySelectorAll('img').length"), json!(0), "text, never HTML");
    assert_only_refusals(&browser.errors);
}

/// Issue 22: what the silence and ops parts of hbd add to hosts and
/// alerts (docs/API.md: `silenced`, `acknowledged`, status `unreachable`
/// with `unreachable_via`, `behind`), as the API will answer it (faked in
/// the browser here), shows on the overview, the host page and the alerts
/// page, each state with its own label and mark, comments as text.
#[test]
fn silenced_acknowledged_and_unreachable_show_distinctly_on_every_page() {
    let dir = TempDir::new("console-states");
    let hbd = Hbd::start(&dir, "");
    let proxy = http_only_proxy(hbd.http);
    let hostile = "<img src=x onerror=alert(1)>";
    let t = now();
    let host = |name: &str, status: &str, level: &str| {
        json!({"name": name, "status": status, "address": "192.0.2.7", "port": 40000, "interval": 30.0,
            "first_seen": t - 9000.0, "last_seen": t - 120.0, "count": 5, "latency_ms": null, "status_since": t - 100.0,
            "uptime": 0.0, "alert_level": level, "availability": {"24h": 99.0, "7d": 99.5}, "plugins": {}})
    };
    let silenced = json!({"id": "s1", "until": t + 7200.0, "comment": hostile, "by": "alice"});
    let acknowledged = json!({"by": "bob", "at": t - 60.0, "comment": hostile});
    let mut web1 = host("web1", "up", "CRITICAL");
    web1["silenced"] = silenced.clone();
    let mut shop1 = host("shop1", "unreachable", "OK");
    shop1["parents"] = json!(["router1"]);
    shop1["unreachable_via"] = json!(["router1"]);
    shop1["plugins"] = json!({"cpu_monitor": "monitor"});
    let alert = |name: &str, plugin: &str, path: &str, level: &str, message: &str| {
        json!({"hostname": name, "plugin": plugin, "metric_path": path, "level": level, "since": t - 100.0,
            "last_value": null, "threshold": null, "message": message})
    };
    let mut router_down = alert("router1", "heartbeat", "silent_for_seconds", "CRITICAL", "router1 is down");
    router_down["acknowledged"] = acknowledged.clone();
    router_down["behind"] = json!(1);
    let mut web1_cpu = alert("web1", "cpu_monitor", "cpu_percent", "CRITICAL", "cpu_percent = 97");
    web1_cpu["silenced"] = silenced.clone();
    web1_cpu["acknowledged"] = acknowledged.clone();
    let summary = json!({"ok": 0, "warning": 0, "critical": 2, "unknown": 0});
    let mut browser = Browser::launch();
    browser.fake("/api/0/hosts", json!({"hosts": [host("router1", "down", "CRITICAL"), web1.clone(), shop1]}));
    browser.fake("/api/0/alerts", json!({"alerts": [router_down, web1_cpu.clone()], "summary": summary}));
    browser.fake("/api/0/hosts/web1", web1);
    browser.fake("/api/0/hosts/web1/plugins", json!({"plugins": {}}));
    browser.fake("/api/0/hosts/web1/alerts", json!({"alerts": [web1_cpu]}));
    browser.fake(
        "/api/0/silences",
        json!({"silences": [{"id": "s1", "host": "web1", "plugin": null, "metric_path": null, "starts_at": t - 600.0,
            "ends_at": t + 7200.0, "comment": hostile, "by": "alice", "created_at": t - 600.0, "active": true}],
            "maintenance": [{"name": "sunday-db", "host": "db*", "active": false, "starts_at": t + 86400.0, "ends_at": t + 93600.0}]}),
    );
    let base = format!("http://{proxy}");
    let marks = |browser: &mut Browser, scope: &str, kind: &str| -> Vec<String> {
        let found =
            browser.eval(&format!("[...document.querySelectorAll('{scope} .mark-{kind}')].map(m => m.textContent)"));
        found.as_array().unwrap().iter().map(|m| m.as_str().unwrap().to_string()).collect()
    };

    browser.navigate(&format!("{base}/"));
    browser.wait_true("the three hosts", "document.querySelectorAll('#hosts-body .vrow').length === 3");
    browser.wait_true("the problems", "document.querySelectorAll('#problems tbody tr').length === 3");
    let tiles =
        browser.eval("['down', 'unreachable', 'silenced'].map(t => document.getElementById(`n-${t}`).textContent)");
    assert_eq!(tiles, json!(["1", "1", "1"]));
    let rows = browser.eval("[...document.querySelectorAll('#problems tbody tr')].map(r => r.cells[0].textContent + ' ' + r.cells[1].textContent)");
    assert_eq!(rows, json!(["router1 DOWN", "shop1 UNREACHABLE", "web1 CRITICAL"]), "down, unreachable, then alerts");
    let acked = marks(&mut browser, "#problems", "acknowledged");
    assert_eq!(acked.len(), 2, "{acked:?}");
    assert!(acked[0].starts_with("acknowledged by bob ") && acked[0].ends_with(&format!(": {hostile}")), "{acked:?}");
    assert_eq!(marks(&mut browser, "#problems", "behind"), ["1 host unreachable behind it"]);
    assert_eq!(marks(&mut browser, "#problems", "unreachable"), ["unreachable behind router1 (down)"]);
    let silenced_marks = marks(&mut browser, "#problems", "silenced");
    assert!(
        silenced_marks.len() == 1
            && silenced_marks[0].starts_with("silenced until ")
            && silenced_marks[0].ends_with(&format!(": {hostile} (by alice)")),
        "{silenced_marks:?}"
    );
    let status = browser.eval("[...document.querySelectorAll('#hosts-body .vrow')].map(r => r.children[0].textContent + ' ' + r.children[1].textContent)");
    assert_eq!(status, json!(["router1 down", "shop1 unreachable", "web1 upsilenced"]), "in the host list too");
    assert_eq!(
        browser.eval("document.querySelector('#hosts-body .mark-silenced').title.endsWith('(by alice)')"),
        json!(true),
        "the details in its tooltip"
    );
    browser.screenshot("overview-states.png");

    browser.navigate(&format!("{base}/hosts/web1"));
    browser.wait_true("web1's silence", "document.querySelectorAll('#marks .mark-silenced').length === 1");
    let mark = browser.text("document.querySelector('#marks .mark-silenced').textContent");
    assert!(mark.ends_with(&format!(": {hostile} (by alice)")), "{mark}");
    browser.wait_true("web1's alert", "document.querySelectorAll('#alerts tbody tr').length === 1");
    assert_eq!(marks(&mut browser, "#alerts", "acknowledged").len(), 1);
    let buttons =
        browser.eval("[...document.querySelectorAll('#marks button, #alerts tbody button')].map(b => b.textContent)");
    assert_eq!(buttons, json!(["end silence", "remove ack", "Silence…"]));
    browser.screenshot("host-states.png");

    browser.navigate(&format!("{base}/alerts"));
    browser.wait_true("the alerts", "document.querySelectorAll('#alerts tbody tr').length === 2");
    assert_eq!(marks(&mut browser, "#alerts", "acknowledged").len(), 2);
    assert_eq!(marks(&mut browser, "#alerts", "silenced").len(), 1);
    assert_eq!(marks(&mut browser, "#alerts", "behind").len(), 1);
    browser.wait_true("the silences", "document.querySelectorAll('#silences tbody tr').length === 1");
    let silence = browser.eval("[...document.querySelector('#silences tbody tr').cells].map(c => c.textContent)");
    let silence: Vec<&str> = silence.as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    assert_eq!((silence[0], silence[1], silence[5], silence[6], silence[7]), ("web1", "any", hostile, "alice", "end"));
    let window = browser.text("document.querySelector('#maintenance li').textContent");
    assert!(window.starts_with("sunday-db (db*): next "), "{window}");
    browser.screenshot("alerts-states.png");
    // Ending it asks hbd, which takes writes only with a token (none here).
    browser.eval("document.querySelector('#silences tbody button').click()");
    browser.wait_true("the answer", "document.getElementById('silence-message').textContent !== ''");
    let refused = browser.text("document.getElementById('silence-message').textContent");
    assert!(refused.contains("token"), "{refused}");
    browser.navigate(&format!("{base}/plugins?host=shop1"));
    browser.wait_true("shop1 on /plugins", "document.querySelectorAll('#host-marks .mark-unreachable').length === 1");
    assert_eq!(browser.eval("document.querySelectorAll('img').length"), json!(0), "comments as text, never HTML");
    assert!(
        browser.errors.iter().all(|e| e.contains("WebSocket") || e.contains("status of 40")),
        "only the proxy's refused WebSockets and the refused write: {:#?}",
        browser.errors
    );
}

/// A job's hostile output (ANSI escapes, HTML, invalid UTF-8, 10 MB of
/// random bytes) reaches hbd bounded to its tail and shows on the job's
/// page as text, in the runs table.
#[test]
fn a_jobs_hostile_output_is_bounded_and_shown_as_text() {
    let dir = TempDir::new("job-output");
    let hbd = Hbd::start(&dir, "");
    let script = "printf '\\033[31m<img src=x onerror=alert(1)>\\n'; head -c 10000000 /dev/urandom; \
                  printf '\\n\\033[0m<img src=y onerror=alert(2)><script>alert(3)</script>\\n\\377\\376 end\\n'; exit 4";
    let out = Command::new(env!("CARGO_BIN_EXE_hbc"))
        .env("HOME", dir.path())
        .args(["run", "-s", &hbd.addr.to_string(), "--name", "hostile", "--", "sh", "-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", String::from_utf8_lossy(&out.stderr));
    let run = wait_for("the failed run", || {
        let (_, host) = get_json(hbd.http, "/api/0/hosts/hostile");
        host["job"]["runs"].as_array()?.last().filter(|r| r["outcome"] == "failed").cloned()
    });
    let output = run["output"].as_str().unwrap();
    assert!(output.len() <= 4096 && output.ends_with("\u{fffd}\u{fffd} end\n"), "bounded tail: {}", output.len());

    let mut browser = Browser::launch();
    browser.navigate(&format!("http://{}/hosts/hostile", hbd.http));
    browser.wait_true("the run", "document.querySelectorAll('#runs tbody tr').length === 1");
    let shown = browser.eval("document.querySelector('#runs pre.run-output').textContent");
    assert!(shown.as_str().unwrap().contains("<img src=y onerror=alert(2)><script>alert(3)</script>"), "{shown}");
    assert_eq!(browser.eval("document.querySelectorAll('main img, main script').length"), json!(0), "text, never HTML");
    assert_eq!(browser.eval("document.querySelector('#runs tbody td:nth-child(4)').textContent"), json!("4"));
    assert_eq!(browser.eval("document.getElementById('runs-section').hidden"), json!(false));
    browser.screenshot("job.png");
    browser.navigate(&format!("http://{}/", hbd.http));
    browser.wait_true("the job marked in the overview", "document.querySelector('#hosts-body .mark-job') !== null");
    let mark = browser.eval("document.querySelector('#hosts-body .mark-job').title");
    assert_eq!(mark, json!("job last run: failed"));
    assert!(browser.errors.is_empty(), "the page logged errors: {:#?}", browser.errors);
}

/// Issue 24: tags beside each host's name, the overview's tag picker (and
/// `/?tag=`), the host page's tags; a hostile tag shows as text.
#[test]
fn tags_show_on_the_overview_and_the_host_page_and_filter_the_list() {
    let dir = TempDir::new("console-tags");
    let hbd = Hbd::start(&dir, "tags:\n  db: 'db*'\n");
    send(&hbd, json!({"ID": "HTB", "name": "db1", "interval": 600, "seq": 1}));
    send(&hbd, json!({"ID": "HTB", "name": "web1", "interval": 600, "seq": 2, "tags": ["web", "eu"]}));
    send(&hbd, json!({"ID": "HTB", "name": "plain", "interval": 600, "seq": 3}));
    let mut browser = Browser::launch();
    browser.navigate(&format!("http://{}/", hbd.http));
    browser.wait_true("three hosts", "document.querySelectorAll('#hosts-body .vrow').length === 3");
    let tags_of = "(name) => [...document.querySelectorAll('#hosts-body .vrow')].find(r => r.querySelector('a').textContent === name).querySelectorAll('.mark-tag')";
    assert_eq!(browser.eval(&format!("[...({tags_of})('web1')].map(m => m.textContent)")), json!(["eu", "web"]));
    assert_eq!(browser.eval(&format!("[...({tags_of})('db1')].map(m => m.getAttribute('href'))")), json!(["/?tag=db"]));
    assert_eq!(browser.eval(&format!("({tags_of})('plain').length")), json!(0));
    assert_eq!(
        browser.eval("[...document.getElementById('tag-filter').options].map(o => o.value)"),
        json!(["", "db", "eu", "web"])
    );
    // A tile per tag; a click filters by it, a second shows every host again.
    assert_eq!(
        browser.eval("[...document.querySelectorAll('#tag-tiles li')].map(t => t.textContent)"),
        json!(["1/1 db up", "1/1 eu up", "1/1 web up"])
    );
    browser.eval("document.querySelector('#tag-tiles button').click()");
    browser.wait_true("db1 by its tile", "document.querySelectorAll('#hosts-body .vrow').length === 1");
    browser.eval("document.querySelector('#tag-tiles button').click()");
    browser.wait_true("every host again", "document.querySelectorAll('#hosts-body .vrow').length === 3");
    browser.eval("(() => { const p = document.getElementById('tag-filter'); p.value = 'db'; p.dispatchEvent(new Event('change')); })()");
    browser.wait_true("only db1", "document.querySelectorAll('#hosts-body .vrow').length === 1");
    assert_eq!(browser.eval("document.querySelector('#hosts-body .vrow a').textContent"), json!("db1"));
    assert_eq!(browser.eval("location.search"), json!("?tag=db"));
    browser.navigate(&format!("http://{}/?tag=web", hbd.http));
    browser.wait_true("only web1", "document.querySelectorAll('#hosts-body .vrow').length === 1 && document.querySelector('#hosts-body .vrow a').textContent === 'web1'");
    assert_eq!(browser.eval("document.getElementById('tag-filter').value"), json!("web"));
    browser.screenshot("overview-tags.png");

    // The host page, its tags from a hostile answer: text, never HTML.
    let (_, mut web1) = get_json(hbd.http, "/api/0/hosts/web1");
    web1["tags"] = json!(["<img src=x id=injected>", "web"]);
    browser.fake("/api/0/hosts/web1", web1);
    browser.navigate(&format!("http://{}/hosts/web1", hbd.http));
    browser.wait_true("the tags", "document.querySelectorAll('#marks .mark-tag').length === 2");
    assert_eq!(
        browser.eval("[...document.querySelectorAll('#marks .mark-tag')].map(m => m.textContent)"),
        json!(["<img src=x id=injected>", "web"])
    );
    assert_eq!(browser.eval("document.getElementById('injected') === null"), json!(true), "text, never HTML");
    assert!(browser.errors.is_empty(), "{:#?}", browser.errors);
}

/// Issue 25: with more hosts than one page holds (`/?page_size=10` stands
/// for the 1,000 of a real page), the overview holds one page that hbd's
/// filters pick: problems first, the tiles and tag tiles from the API's
/// totals, a host beyond the first page reached by the next page and by
/// the filter box, its link to its page, and a host coming back up moving
/// off the first page by itself.
#[test]
fn the_overview_shows_a_page_at_a_time_beyond_one_page_of_hosts() {
    let dir = TempDir::new("console-pages");
    let hbd = Hbd::start(&dir, "grace: 0\ntags:\n  teens: 'host-1?'\n");
    for i in 0..24 {
        send(&hbd, json!({"ID": "HTB", "name": format!("host-{i:02}"), "interval": 600, "seq": i}));
    }
    send(&hbd, json!({"ID": "HTB", "name": "zz-down", "interval": 1, "seq": 99}));
    wait_for("zz-down down", || {
        (get_json(hbd.http, "/api/0/hosts?status=down&fields=name").1["total"] == 1).then_some(())
    });
    let mut browser = Browser::launch();
    let base = format!("http://{}", hbd.http);
    // Each row's host (its first link: its tags are links too).
    let rows = "[...document.querySelectorAll('#hosts-body .vrow')].map(r => r.querySelector('a').textContent)";
    let first_rows = |first: &str, count: usize| {
        format!("(() => {{ const r = {rows}; return r.length === {count} && r[0] === '{first}'; }})()")
    };
    browser.navigate(&format!("{base}/?page_size=10"));
    // Problems first: the down host that sorts last by name leads page one.
    browser.wait_true("the first page", &first_rows("zz-down", 10));
    browser.wait_true("the counts", "document.getElementById('n-ok').textContent === '24'");
    assert_eq!(browser.eval("document.getElementById('n-down').textContent"), json!("1"));
    assert_eq!(browser.eval("document.getElementById('shown').textContent"), json!("25"));
    assert_eq!(browser.eval("document.getElementById('pager').hidden"), json!(false));
    assert_eq!(browser.eval("document.getElementById('page-range').textContent"), json!("hosts 1–10 of 25"));
    assert_eq!(browser.eval("document.getElementById('page-previous').disabled"), json!(true));
    browser.wait_true(
        "the tag tile",
        "[...document.querySelectorAll('#tag-tiles li')].map(t => t.textContent).join() === '10/10 teens up'",
    );
    assert!(
        browser.eval("document.querySelector('#problems tbody').textContent").as_str().unwrap().contains("zz-down"),
        "the down host among the problems"
    );
    browser.screenshot("overview-paged.png");

    // The pages after it, and back.
    browser.eval("document.getElementById('page-next').click()");
    browser.wait_true("page two", &first_rows("host-09", 10));
    browser.eval("document.getElementById('page-next').click()");
    browser.wait_true("page three", &first_rows("host-19", 5));
    assert_eq!(browser.eval("document.getElementById('page-next').disabled"), json!(true));
    assert_eq!(browser.eval("document.getElementById('page-range').textContent"), json!("hosts 21–25 of 25"));
    browser.eval("document.getElementById('page-previous').click()");
    browser.wait_true("page two again", &first_rows("host-09", 10));

    // The tag tile and the status buttons ask hbd for what they name.
    browser.eval("document.querySelector('#tag-tiles button').click()");
    browser.wait_true("the teens", &first_rows("host-10", 10));
    browser.wait_true("one page", "document.getElementById('pager').hidden");
    assert_eq!(browser.eval("document.getElementById('shown').textContent"), json!("10 of 25"));
    browser.eval("document.querySelector('#tag-tiles button').click()");
    browser.wait_true("every host again", &first_rows("zz-down", 10));
    browser.eval("document.querySelector('#status-filters [data-status=\"down\"]').click()");
    browser.wait_true("only the down host", &first_rows("zz-down", 1));
    browser.eval("document.querySelector('#status-filters [data-status=\"\"]').click()");
    browser.wait_true("every host", &first_rows("zz-down", 10));

    // The filter box reaches a host on the last page; its link opens it.
    browser.eval(
        "(() => { const f = document.getElementById('filter'); f.value = 'HOST-23'; f.dispatchEvent(new Event('input')); })()",
    );
    browser.wait_true("host-23 by the filter", &first_rows("host-23", 1));
    assert_eq!(browser.eval("document.getElementById('shown').textContent"), json!("1 of 25"));
    browser.eval("document.querySelector('#hosts-body .vrow a').click()");
    browser.wait_true(
        "host-23's page",
        "location.pathname === '/hosts/host-23' && document.getElementById('name').textContent === 'host-23'",
    );

    // Live: the down host comes back and leaves the head of the list.
    browser.navigate(&format!("{base}/?page_size=10"));
    browser.wait_true("the first page again", &first_rows("zz-down", 10));
    browser.wait_true("the live connection", "document.getElementById('connection').textContent === 'live'");
    send(&hbd, json!({"ID": "HTB", "name": "zz-down", "interval": 600, "seq": 100}));
    browser.wait_true("zz-down up", &first_rows("host-00", 10));
    browser.wait_true("no host down", "document.getElementById('n-down').textContent === '0'");
    assert_eq!(browser.eval("document.getElementById('n-ok').textContent"), json!("25"));
    assert!(browser.errors.is_empty(), "the page logged errors: {:#?}", browser.errors);
}
