//! The man pages and docs are the reference: these tests fail when they and
//! the code drift apart, or when the pages do not lint clean.

mod support;

use std::collections::BTreeSet;
use std::fs;
use std::process::Command;

use support::*;

fn read(path: &str) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn man_pages_lint_clean() {
    for page in ["man/hbd.8", "man/hbd.yaml.5", "man/hbc.8", "man/hbc.yaml.5"] {
        let out = Command::new("mandoc")
            .args(["-Tlint", "-Wstyle", page])
            .output()
            .expect("mandoc is installed (tests/run installs it)");
        let report = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && report.trim().is_empty(), "{page}:\n{report}");
    }
}

/// `.It Ic name` entries of the page, the way mdoc lists keywords.
fn documented_keys(page: &str) -> BTreeSet<String> {
    read(page)
        .lines()
        .filter_map(|l| l.strip_prefix(".It Ic "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(String::from)
        .collect()
}

#[test]
fn hbd_yaml_5_documents_exactly_the_keys_hbd_accepts() {
    let documented = documented_keys("man/hbd.yaml.5");
    let mut accepted: BTreeSet<String> = hbd::server::config::KEYS.iter().map(|k| k.to_string()).collect();
    accepted.extend(["id", "secret", "hosts"].map(String::from));
    accepted.extend(["warning", "critical", "operator", "hysteresis", "for"].map(String::from));
    assert_eq!(documented, accepted, "man/hbd.yaml.5 and config::KEYS differ");
}

/// Every `--option` in `bin --help` has an `.It` entry in the OPTIONS section
/// of `page`, written the way mdoc writes it (`Fl -config`).
fn assert_documents_every_option_of_help(bin: &str, page: &str) {
    let out = Command::new(bin).arg("--help").output().unwrap();
    assert!(out.status.success(), "{bin} --help: {}", out.status);
    let help = String::from_utf8_lossy(&out.stdout);
    let entries: Vec<String> = section(page, "OPTIONS").into_iter().filter(|l| l.starts_with(".It ")).collect();
    let options: BTreeSet<&str> =
        help.split(|c: char| c.is_whitespace() || "[]|".contains(c)).filter(|w| w.starts_with("--")).collect();
    assert!(options.len() >= 6, "{options:?}");
    for option in options {
        let flag = format!("Fl {}", &option[1..]);
        let documented = entries.iter().any(|entry| {
            // A whole word: `Fl -name` must not pass for `Fl -names`.
            entry
                .match_indices(&flag)
                .any(|(i, _)| entry[i + flag.len()..].chars().next().is_none_or(char::is_whitespace))
        });
        assert!(documented, "{page} has no `.It` entry for {option} in OPTIONS");
    }
}

#[test]
fn hbd_8_documents_every_option_of_help() {
    assert_documents_every_option_of_help(hbd_bin(), "man/hbd.8");
}

#[test]
fn hbc_8_documents_every_option_of_help() {
    assert_documents_every_option_of_help(env!("CARGO_BIN_EXE_hbc"), "man/hbc.8");
}

#[test]
fn hbc_yaml_5_documents_exactly_the_keys_hbc_accepts() {
    let documented = documented_keys("man/hbc.yaml.5");
    let mut accepted: BTreeSet<String> = hbd::client::config::KEYS.iter().map(|k| k.to_string()).collect();
    // The keys below the top level, from the structs that read them:
    // `key` (ClientKey), every plugin's name (plugins::NAMES), the options of
    // all built-in plugins (Common), of one plugin each (cpu_monitor,
    // disk_monitor, network_monitor, filesystem_info, nagios_runner, whose
    // named checks take name/command/timeout) and of `exec` entries.
    let nested = [
        "id",
        "secret",
        "enabled",
        "interval",
        "per_core",
        "mounts",
        "interfaces",
        "connections",
        "all",
        "timeout",
        "commands",
        "name",
        "command",
        "kind",
    ];
    accepted.extend(nested.map(String::from));
    accepted.extend(hbd::client::plugins::names().map(String::from));
    assert_eq!(
        documented, accepted,
        "man/hbc.yaml.5 and client::config::KEYS, the plugin registry and the plugin options differ"
    );
}

/// The lines of `page` from `.Sh section` to the next `.Sh`.
fn section(page: &str, section: &str) -> Vec<String> {
    let text = read(page);
    let heading = format!(".Sh {section}");
    let mut lines = text.lines().skip_while(|l| *l != heading);
    assert!(lines.next().is_some(), "{page} has no {heading}");
    lines.take_while(|l| !l.starts_with(".Sh ")).map(String::from).collect()
}

#[test]
fn hbc_8_lists_every_plugin_in_order() {
    let listed: Vec<String> = section("man/hbc.8", "PLUGINS")
        .iter()
        .filter_map(|l| l.strip_prefix(".It Sy "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(String::from)
        .collect();
    let registry: Vec<&str> = hbd::client::plugins::names().collect();
    assert_eq!(listed, registry, "the PLUGINS section of man/hbc.8 and the plugin registry differ");
}

/// The body of the first fenced block of `lang` in the Markdown `text`.
fn fenced_block(text: &str, lang: &str) -> String {
    let fence = format!("```{lang}");
    let mut lines = text.lines().skip_while(|l| l.trim_end() != fence);
    assert!(lines.next().is_some(), "no {fence} block");
    let mut body: String = lines.take_while(|l| l.trim_end() != "```").collect::<Vec<_>>().join("\n");
    body.push('\n');
    body
}

#[test]
fn protocol_md_python_sender_is_accepted_by_hbd() {
    let doc = read("docs/PROTOCOL.md");
    // The configuration shown for the script: the key it signs with.
    let config = fenced_block(&doc, "yaml");
    let script = fenced_block(&doc, "python");
    assert!(config.contains("keys:"), "{config}");
    let dir = TempDir::new("protocol-python");
    let hbd = Hbd::start(&dir, &config);
    let script_path = dir.join("send_signed.py");
    fs::write(&script_path, script).unwrap();
    let out = Command::new("python3")
        .arg(&script_path)
        .arg(hbd.addr.port().to_string())
        .output()
        .expect("python3 is installed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python3 send_signed.py: {}\nstdout: {stdout}\nstderr: {}\nhbd log:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        hbd.log()
    );
    let ack: serde_json::Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("the script prints the ACK: {e}: {stdout}"));
    assert_eq!(ack, serde_json::json!({"ID": "ACK", "name": "webserver1", "seq": 1}));
    hbd.wait_journal("the signed heartbeat in the journal", |line| {
        line["message"]["ID"] == "HTB" && line["message"]["name"] == "webserver1"
    });
}
