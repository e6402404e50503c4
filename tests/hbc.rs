//! End-to-end tests of the real `hbc` binary: what it prints and sends, its
//! plugins (Nagios checks from Debian's monitoring-plugins-basic for real),
//! and hbc → hbd over loopback.

mod support;

use std::fs;
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;
use support::*;

const NAGIOS: &str = "/usr/lib/nagios/plugins";
const SYSTEM_PLUGINS: [&str; 6] =
    ["os_info", "cpu_monitor", "memory_monitor", "disk_monitor", "network_monitor", "filesystem_info"];

fn hbc_bin() -> &'static str {
    env!("CARGO_BIN_EXE_hbc")
}

fn hbc(dir: &TempDir, args: &[&str]) -> Output {
    Command::new(hbc_bin()).args(args).current_dir(dir.path()).env("HOME", dir.path()).output().expect("run hbc")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The messages `hbc --print` wrote, one JSON object a line.
fn printed(out: &Output) -> Vec<Value> {
    assert!(out.status.success(), "hbc failed: {}", text(&out.stderr));
    text(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
}

fn write_config(dir: &TempDir, yaml: &str) -> String {
    let path = dir.join("hbc.yaml");
    fs::write(&path, yaml).unwrap();
    path.display().to_string()
}

fn disable_all_but(keep: &[&str]) -> Vec<String> {
    SYSTEM_PLUGINS
        .iter()
        .filter(|p| !keep.contains(p))
        .flat_map(|p| ["--disable-plugin".to_string(), p.to_string()])
        .collect()
}

#[test]
fn once_print_shows_every_system_plugin_field_by_field() {
    let dir = TempDir::new("print");
    let messages = printed(&hbc(&dir, &["--once", "--print", "--name", "Test-Host", "-i", "45"]));
    assert_eq!(messages.len(), 1, "everything fits one heartbeat");
    let m = &messages[0];
    assert_eq!(m["ID"], "HTB");
    assert_eq!(m["name"], "test-host", "sent in lower case, as hbd keeps it");
    assert_eq!(m["interval"], 45);
    assert!(m["seq"].as_u64().is_some());
    assert!(m["client"].as_str().unwrap().starts_with("hbc "));
    assert!(m.get("latency_ms").is_none(), "nothing measured yet");
    let plugins = m["plugins"].as_object().unwrap();
    let names: Vec<&str> = plugins.keys().map(String::as_str).collect();
    let mut expected = SYSTEM_PLUGINS.to_vec();
    expected.sort();
    assert_eq!(names, expected);
    for (name, p) in plugins {
        assert!(p["at"].as_f64().unwrap() > 1.7e9, "{name}");
        assert!(p.get("error").is_none(), "{name}: {p}");
    }
    let data = |plugin: &str| &plugins[plugin]["data"];
    assert_eq!(plugins["os_info"]["kind"], "info");
    assert_eq!(plugins["filesystem_info"]["kind"], "info");
    assert_eq!(plugins["cpu_monitor"]["kind"], "monitor");
    assert_eq!(data("os_info")["os"], "linux");
    for key in ["kernel", "architecture", "distribution", "hostname"] {
        assert!(data("os_info")[key].is_string(), "os_info.{key}");
    }
    assert!(data("os_info")["boot_time"].as_u64().unwrap() > 1_000_000_000);
    let cpu = data("cpu_monitor");
    assert!((0.0..=100.0).contains(&cpu["cpu_percent"].as_f64().unwrap()), "{cpu}");
    for key in ["load_1min", "load_5min", "load_15min", "cpu_count", "processes_total", "processes_running"] {
        assert!(cpu[key].is_number(), "cpu_monitor.{key}");
    }
    let mem = data("memory_monitor");
    for key in ["percent", "available_mb", "total_mb", "used_mb", "swap_percent", "swap_total_mb"] {
        assert!(mem[key].is_number(), "memory_monitor.{key}");
    }
    let root = &data("disk_monitor")["partitions"]["/"];
    for key in ["percent", "free_gb", "free_mb", "total_gb", "used_gb"] {
        assert!(root[key].is_number(), "disk_monitor.partitions./.{key} in {}", data("disk_monitor"));
    }
    assert!(data("disk_monitor")["io"]["read_bytes_per_s"].is_number());
    let net = data("network_monitor");
    for key in ["errors_total", "dropped_total", "connections_total"] {
        assert!(net[key].is_number(), "network_monitor.{key}");
    }
    assert!(net["interfaces"].is_object() && net["connections"].is_object());
    let fs_list = data("filesystem_info")["filesystems"].as_array().unwrap();
    assert!(fs_list.iter().all(|f| f["mount"].is_string() && f["fstype"].is_string()));
}

#[test]
fn nagios_checks_run_for_real_with_every_exit_code() {
    let dir = TempDir::new("nagios");
    let config = write_config(
        &dir,
        &format!(
            "plugins:\n  nagios_runner:\n    timeout: 10\n    commands:\n\
             \x20     - {NAGIOS}/check_load -w 50,40,30 -c 100,80,60\n\
             \x20     - {NAGIOS}/check_disk -w 1% -c 1% -p /\n\
             \x20     - {NAGIOS}/check_users -w 1000 -c 2000\n\
             \x20     - {NAGIOS}/check_dummy 0 'all good'\n\
             \x20     - {NAGIOS}/check_dummy 1 'a warning'\n\
             \x20     - {NAGIOS}/check_dummy 2 'a critical'\n\
             \x20     - {NAGIOS}/check_dummy 3 'unknown state'\n\
             \x20     - name: hangs\n        command: sleep 30\n        timeout: 1\n"
        ),
    );
    let mut args = vec!["-c", config.as_str(), "--once", "--print", "--name", "n1"];
    let disabled = disable_all_but(&[]);
    args.extend(disabled.iter().map(String::as_str));
    let messages = printed(&hbc(&dir, &args));
    let nagios = &messages[0]["plugins"]["nagios_runner"]["data"];
    assert_eq!(nagios["status"], "CRITICAL", "{nagios}");
    assert_eq!(nagios["exit_code"], 2);
    let checks = nagios["checks"].as_object().unwrap();
    assert_eq!(checks.len(), 8, "{:?}", checks.keys().collect::<Vec<_>>());

    let load = &checks["check_load"];
    assert_eq!((load["status"].as_str(), load["exit_code"].as_i64()), (Some("OK"), Some(0)), "{load}");
    assert!(load["output"].as_str().unwrap().contains("LOAD OK"));
    let load1 = &load["perfdata"]["load1"];
    assert!(load1["value"].is_number());
    assert_eq!(load1["warn"]["end"], 50.0);
    assert_eq!(load1["crit"]["end"], 100.0);
    assert_eq!(load["command"], format!("{NAGIOS}/check_load -w 50,40,30 -c 100,80,60"));

    let disk = &checks["check_disk"];
    assert!(disk["exit_code"].as_i64().is_some());
    let root = &disk["perfdata"]["/"];
    assert!(root["value"].is_number() && root["max"].is_number(), "{disk}");
    assert_eq!(checks["check_users"]["perfdata"]["users"]["crit"]["end"], 2000.0);

    let dummies: Vec<(&str, i64, &str)> = ["check_dummy", "check_dummy_2", "check_dummy_3", "check_dummy_4"]
        .iter()
        .map(|n| {
            let c = &checks[*n];
            (c["status"].as_str().unwrap(), c["exit_code"].as_i64().unwrap(), c["output"].as_str().unwrap())
        })
        .collect();
    assert_eq!(
        dummies,
        [
            ("OK", 0, "OK: all good"),
            ("WARNING", 1, "WARNING: a warning"),
            ("CRITICAL", 2, "CRITICAL: a critical"),
            ("UNKNOWN", 3, "UNKNOWN: unknown state"),
        ]
    );
    let hangs = &checks["hangs"];
    assert_eq!((hangs["status"].as_str(), hangs["output"].as_str()), (Some("UNKNOWN"), Some("timed out after 1 s")));
    assert_eq!((nagios["ok"].as_u64(), nagios["warning"].as_u64()), (Some(4), Some(1)));
    assert_eq!((nagios["critical"].as_u64(), nagios["unknown"].as_u64()), (Some(1), Some(2)));
}

#[test]
fn exec_plugins_that_fail_hang_or_print_garbage_touch_nothing_else() {
    let dir = TempDir::new("exec");
    let config = write_config(
        &dir,
        "plugins:\n  exec:\n\
         \x20   - {name: queue, command: \"echo '{\\\"depth\\\": 7, \\\"ok\\\": true}'\", kind: monitor}\n\
         \x20   - {name: garbage, command: \"echo this is not json\"}\n\
         \x20   - {name: hangs, command: \"sleep 30\", timeout: 1}\n\
         \x20   - {name: fails, command: \"sh -c 'echo disk gone >&2; exit 2'\"}\n",
    );
    let mut args = vec!["-c", config.as_str(), "--once", "--print", "--name", "e1"];
    let disabled = disable_all_but(&["memory_monitor"]);
    args.extend(disabled.iter().map(String::as_str));
    let messages = printed(&hbc(&dir, &args));
    let plugins = &messages[0]["plugins"];
    assert_eq!(plugins["queue"]["data"], serde_json::json!({"depth": 7, "ok": true}));
    assert!(plugins["garbage"]["error"].as_str().unwrap().starts_with("printed no JSON object"));
    assert_eq!(plugins["hangs"]["error"], "timed out after 1 s");
    assert_eq!(plugins["fails"]["error"], "exit status 2: disk gone");
    assert!(plugins["memory_monitor"]["data"]["percent"].is_number(), "other plugins unaffected");
}

#[test]
fn command_line_and_configuration_errors() {
    let dir = TempDir::new("hbcerrors");
    let out = hbc(&dir, &["--once"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no server to send to"));
    let out = hbc(&dir, &["--bogus"]);
    assert_eq!(out.status.code(), Some(2));
    let out = hbc(&dir, &["--once", "--print", "--enable-plugin", "nagios_runner"]);
    assert_eq!(out.status.code(), Some(78));
    assert!(text(&out.stderr).contains("nagios_runner has no commands"), "{}", text(&out.stderr));
    let config = write_config(&dir, "server: x\nplugins:\n  cpu_monitor:\n    per_cor: true\n");
    let out = hbc(&dir, &["-c", &config, "--once"]);
    assert_eq!(out.status.code(), Some(78));
    assert!(text(&out.stderr).contains("per_cor"), "{}", text(&out.stderr));
    let out = hbc(&dir, &["--once", "--print", "--name", "bad name!"]);
    assert_eq!(out.status.code(), Some(78));
    let out = hbc(&dir, &["-V"]);
    assert_eq!(text(&out.stdout).trim(), format!("hbc {}", env!("CARGO_PKG_VERSION")));

    // --check-config prints the effective configuration, secrets hidden.
    let config = write_config(&dir, "server: hbd.lan\nkey: {id: k1, secret: 0123456789abcdefXYZ}\n");
    let out = hbc(&dir, &["-c", &config, "--check-config", "-i", "7"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(stdout.contains("interval: 7") && stdout.contains("hbd.lan") && stdout.contains("<redacted>"), "{stdout}");
    assert!(!stdout.contains("0123456789abcdefXYZ"));
    assert!(text(&out.stderr).contains("configuration OK"));

    // Every mistake of a file in one run, each once; YAML 1.1 booleans as PyYAML writes them.
    let config = write_config(&dir, "sever: x\ninterval: 0\nplugins:\n  os_info:\n    enabled: perhaps\n");
    let out = hbc(&dir, &["-c", &config, "--once", "--print"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    for expected in
        ["unknown key `sever` (did you mean `server`?)", "interval: 0 is outside 1 to 86400 seconds", "enabled"]
    {
        assert_eq!(stderr.matches(expected).count(), 1, "{expected:?} once in:\n{stderr}");
    }
    let config = write_config(&dir, "plugins:\n  os_info:\n    enabled: no\n  cpu_monitor:\n    enabled: off\n");
    let out = hbc(&dir, &["-c", &config, "--once", "--print", "--disable-plugin", "disk_monitor"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!stdout.contains("os_info") && !stdout.contains("cpu_monitor"), "{stdout}");
}

#[test]
fn once_exits_0_only_when_acknowledged() {
    let dir = TempDir::new("onceack");
    let mut hbd = Hbd::start(&dir, "");
    let server = format!("127.0.0.1:{}", hbd.addr.port());
    // A capitalised name is acknowledged too (hbd answers in lower case).
    let mut args = vec!["--once", "-s", server.as_str(), "--name", "Once-Host"];
    let disabled = disable_all_but(&[]);
    args.extend(disabled.iter().map(String::as_str));
    let out = hbc(&dir, &args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    hbd.wait_journal("heartbeat from hbc", |v| v["message"]["name"] == "once-host");
    assert!(hbd.stop().success());

    // Nobody listens there any more.
    let out = hbc(&dir, &args);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains(&format!("no ACK from {server}")), "{}", text(&out.stderr));
}

#[test]
fn signed_client_is_accepted_and_a_wrong_key_is_not() {
    let dir = TempDir::new("hbcsigned");
    let hbd = Hbd::start(&dir, "keys:\n  - {id: site1, secret: a-long-enough-secret, hosts: [\"*.lan\"]}\n");
    let server = format!("127.0.0.1:{}", hbd.addr.port());
    let run = |secret: &str, name: &str| {
        let config = write_config(&dir, &format!("server: \"{server}\"\nkey: {{id: site1, secret: {secret}}}\n"));
        let mut args = vec!["-c".to_string(), config, "--once".into(), "--name".into(), name.into()];
        args.extend(disable_all_but(&["memory_monitor"]));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        hbc(&dir, &args)
    };
    assert!(run("a-long-enough-secret", "pi.lan").status.success());
    hbd.wait_journal("signed plugin data", |v| v["message"]["name"] == "pi.lan" && v["message"]["plugins"].is_object());
    assert_eq!(run("the-wrong-secret-123", "pi.lan").status.code(), Some(1));
    assert_eq!(run("a-long-enough-secret", "not-allowed.example").status.code(), Some(1));
}

struct HbcDaemon(Child);

impl Drop for HbcDaemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The host in the state file, with its plugin store (`plugins[i]` is the
/// store of `hosts[i]`) under `store`.
fn host_in_state(dir: &TempDir, name: &str) -> Option<Value> {
    let state: Value = serde_json::from_str(&fs::read_to_string(dir.join("state.json")).ok()?).ok()?;
    let i = state["hosts"].as_array()?.iter().position(|h| h["name"] == name)?;
    let mut host = state["hosts"][i].clone();
    host["store"] = state["plugins"][i].clone();
    Some(host)
}

/// A plugin's history as the API answers it.
fn samples(hbd: &Hbd, plugin: &str) -> Vec<Value> {
    let (_, body) = get_json(hbd.http, &format!("/api/0/hosts/e2e-host/plugins/{plugin}?limit=50"));
    body["samples"].as_array().cloned().unwrap_or_default()
}

#[test]
fn hbc_to_hbd_latency_history_splitting_and_restart() {
    let dir = TempDir::new("e2e");
    let hbd_config = "state_save_interval: 1\nplugin_history: 3\ngrace: 30\n";
    let mut hbd = Hbd::start(&dir, hbd_config);
    // Four exec plugins of ~1.2 kB incompressible data each: more than one
    // 1400-byte datagram holds, so hbc must split them into HTB + PLG.
    let blob = dir.join("blob.sh");
    fs::write(&blob, "printf '{\"blob\":\"%s\"}' \"$(head -c 600 /dev/urandom | od -An -tx1 | tr -d ' \\n')\"\n")
        .unwrap();
    let mut yaml = format!(
        "server: \"127.0.0.1:{}\"\ninterval: 1\nmax_datagram_size: 1400\nplugins:\n  memory_monitor:\n    interval: 1\n  exec:\n",
        hbd.addr.port()
    );
    for i in 0..4 {
        yaml.push_str(&format!("    - {{name: blob{i}, command: \"sh {}\", interval: 3600}}\n", blob.display()));
    }
    let config = write_config(&dir, &yaml);
    let mut args = vec!["-c".to_string(), config, "--name".into(), "e2e-host".into(), "-v".into()];
    args.extend(disable_all_but(&["memory_monitor"]));
    let child = Command::new(hbc_bin())
        .args(&args)
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(fs::File::create(dir.join("hbc.err")).unwrap())
        .spawn()
        .unwrap();
    let _hbc = HbcDaemon(child);

    let host = wait_for("latency, 3 memory samples and 4 blobs in the state file", || {
        let host = host_in_state(&dir, "e2e-host")?;
        let blobs = (0..4).filter(|i| host["store"][format!("blob{i}")]["blocks"].is_array()).count();
        (host["latency_ms"].is_number()
            && samples(&hbd, "memory_monitor").len() == 3
            && host["count"].as_u64()? >= 4
            && blobs == 4)
            .then_some(host)
    });
    let latency = host["latency_ms"].as_f64().unwrap();
    assert!(latency > 0.0 && latency < 1000.0, "{latency}");
    assert_eq!(host["status"], "up");
    assert_eq!(host["store"]["blob0"]["kind"], "monitor");
    for i in 0..4 {
        assert!(samples(&hbd, &format!("blob{i}"))[0]["data"]["blob"].is_string());
    }
    let memory = samples(&hbd, "memory_monitor");
    assert!(memory.windows(2).all(|w| w[0]["at"].as_f64() < w[1]["at"].as_f64()), "history oldest first");
    assert!(memory[0]["data"]["percent"].is_number());
    let plg = hbd.wait_journal("a PLG datagram", |v| v["message"]["ID"] == "PLG");
    assert_eq!(plg["message"]["name"], "e2e-host");

    // Restart hbd: the store comes back from the state file, and is saved
    // again at the next stop (hbc sends to the old port, so nothing new arrives).
    assert!(hbd.stop().success());
    let before = host_in_state(&dir, "e2e-host").unwrap();
    let mut hbd = Hbd::start(&dir, hbd_config);
    hbd.wait_log("state: restored 1 hosts");
    let back = samples(&hbd, "memory_monitor");
    assert_eq!(back.len(), 3, "history read back from the state file");
    assert!(back[2]["at"].as_f64() >= memory[2]["at"].as_f64());
    // The round trips come back too: as many as plugin_history, the newest last.
    let (_, restored) = get_json(hbd.http, "/api/0/hosts/e2e-host");
    let history = restored["latency_history"].as_array().unwrap();
    assert!(!history.is_empty() && history.len() <= 3, "{history:?}");
    assert_eq!(history.last().unwrap()[1], before["latency_ms"], "{history:?}");
    assert!(history.windows(2).all(|w| w[0][0].as_f64() < w[1][0].as_f64()), "oldest first");
    assert!(hbd.stop().success());
    assert_eq!(host_in_state(&dir, "e2e-host").unwrap(), before, "the host and its plugin store came back whole");
}

#[test]
fn every_server_gets_every_message_over_ipv4_and_ipv6() {
    let (dir_a, dir_b) = (TempDir::new("two-a"), TempDir::new("two-b"));
    let (v4, v6) = (Hbd::start(&dir_a, ""), Hbd::start_on(&dir_b, "::1", ""));
    let (server_a, server_b) = (format!("127.0.0.1:{}", v4.addr.port()), format!("[::1]:{}", v6.addr.port()));
    let mut args = vec!["--once", "-s", server_a.as_str(), "-s", server_b.as_str(), "--name", "both"];
    let disabled = disable_all_but(&["memory_monitor"]);
    args.extend(disabled.iter().map(String::as_str));
    let out = hbc(&dir_a, &args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for (hbd, source) in [(&v4, "127.0.0.1"), (&v6, "::1")] {
        let line = hbd.wait_journal("the heartbeat", |v| v["message"]["name"] == "both");
        assert!(line["message"]["plugins"]["memory_monitor"].is_object());
        assert_eq!(line["source_ip"], source);
    }
}
