//! The man pages and docs are the reference: these tests fail when they and
//! the code drift apart, or when the pages do not lint clean.

mod support;

use std::collections::BTreeSet;
use std::fs;
use std::process::Command;

use hbd::yaml::ConfigFile;
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
    // The keys every notification service block takes, and email's own.
    accepted.extend(["min_level", "max_per_hour", "timeout"].map(String::from));
    accepted.extend(["server", "port", "security", "username", "from", "to", "ca_file"].map(String::from));
    // The members of a `peers` entry (`port` is email's too).
    accepted.extend(["host", "key"].map(String::from));
    // alertmanager's (`timeout` is every service's).
    accepted.extend(["urls", "resend_interval", "external_url"].map(String::from));
    // A maintenance window's keys (`plugin, metric_path` on one line).
    accepted.extend(["name", "plugin", "days", "start", "end", "comment"].map(String::from));
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

// Macro arguments are kept between these two marks, so that a value
// such as `::` or `/usr/local/etc/ssl/` is taken whole.
const OPEN: char = '\u{1}';
const CLOSE: char = '\u{2}';

/// The top-level entries of the KEYS section of `page` as (key, text), the
/// text's lines joined with spaces, macro arguments between [`OPEN`] and
/// [`CLOSE`]. Sentences of nested entries (the members of `keys`) are not
/// the top-level key's.
fn top_level_entries(page: &str) -> Vec<(String, String)> {
    let mut entries: Vec<(String, String)> = Vec::new();
    let mut depth = 0;
    for line in section(page, "KEYS") {
        if line.starts_with(".Bl") {
            depth += 1;
        } else if line.starts_with(".El") {
            depth -= 1;
        } else if depth == 1 {
            if let Some(rest) = line.strip_prefix(".It Ic ") {
                entries.push((rest.split_whitespace().next().unwrap().to_string(), String::new()));
            } else if let Some((_, text)) = entries.last_mut() {
                match line.strip_prefix('.') {
                    // A macro's arguments, without the closing punctuation
                    // mdoc writes as separate words.
                    Some(macro_line) => {
                        let mut words: Vec<&str> = macro_line.split_whitespace().skip(1).collect();
                        while words.last().is_some_and(|w| w.len() == 1 && ".,;:)".contains(*w)) {
                            words.pop();
                        }
                        text.push_str(&format!("{OPEN}{}{CLOSE}", words.join(" ")));
                    }
                    None => text.push_str(&line),
                }
                text.push(' ');
            }
        }
    }
    entries
}

/// The default each top-level entry of the KEYS section of `page` states,
/// by key, as YAML: `Some(yaml)` for a literal default ("If not specified,
/// it defaults to 50003.", or a value set in a macro such as `.Ql ::`),
/// `None` for one said in words ("If not specified, there is no secure
/// WebSocket.", "... it defaults to this system's host name").
fn documented_defaults(page: &str) -> Vec<(String, Option<String>)> {
    top_level_entries(page)
        .into_iter()
        .map(|(key, text)| {
            let sentence = text
                .rsplit_once("If not specified, ")
                .unwrap_or_else(|| panic!("{page}: {key} states no default (\"If not specified, ...\")"))
                .1;
            let default = sentence.strip_prefix("it defaults to ").and_then(|value| {
                if let Some(literal) = value.strip_prefix(OPEN) {
                    let literal = literal.split(CLOSE).next().unwrap();
                    let is_scalar = literal.parse::<f64>().is_ok() || literal == "true" || literal == "false";
                    return Some(if is_scalar { literal.to_string() } else { serde_json::to_string(literal).unwrap() });
                }
                // Plain text: the value ends at the sentence's end, a
                // comment in parentheses or a clause after , : or ;.
                let value = value.split([',', ':', ';', '(']).next().unwrap().trim();
                let value = value.strip_suffix('.').unwrap_or(value).trim();
                match value {
                    "an empty list" => Some("[]".to_string()),
                    "an empty mapping" => Some("{}".to_string()),
                    v if v.parse::<f64>().is_ok() || v == "true" || v == "false" => Some(v.to_string()),
                    _ => None,
                }
            });
            (key, default)
        })
        .collect()
}

/// The first statement of a range in `text`, if any: `from N to N` (also
/// `from above N`, `to below N`), `at least N`, `above N`, the way the
/// pages write ranges. Other numbers (`counted from 0`, `up to 604800`,
/// `at most 63 characters` of a name) are not ranges of the key.
fn stated_range(text: &str) -> Option<String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let is_number = |w: &str| w.trim_end_matches(['.', ',', ';', ')']).parse::<f64>().is_ok();
    // The words from `at` that state a range: `from [above] N to [below] N`.
    let from_to = |at: usize| {
        let mut i = at + 1;
        i += usize::from(words.get(i) == Some(&"above"));
        if !words.get(i).is_some_and(|w| is_number(w)) || words.get(i + 1) != Some(&"to") {
            return None;
        }
        i += 2;
        i += usize::from(words.get(i) == Some(&"below"));
        words.get(i).is_some_and(|w| is_number(w)).then_some(i)
    };
    (0..words.len()).find_map(|at| {
        let end = match words[at].to_ascii_lowercase().as_str() {
            "from" => from_to(at)?,
            "least" if at > 0 && words[at - 1].eq_ignore_ascii_case("at") => at + 1,
            "above" => at + 1,
            _ => return None,
        };
        words.get(end).filter(|w| is_number(w))?;
        Some(words[at.saturating_sub(1)..=end].join(" "))
    })
}

/// Every top-level entry of `page` states the range its key has in `specs`,
/// in the words of `KeySpec::sentence`, and no entry states another range
/// (or one its key does not have).
fn assert_states_the_ranges(page: &str, specs: &[hbd::yaml::KeySpec]) {
    for (key, text) in top_level_entries(page) {
        let spec = specs.iter().find(|s| s.name == key).unwrap_or_else(|| panic!("{page}: {key} is no key"));
        let mut rest = text.clone();
        if let Some(sentence) = spec.sentence() {
            assert_eq!(text.matches(&sentence).count(), 1, "{page}: {key} should say {sentence:?} once:\n{text}");
            rest = text.replacen(&sentence, "", 1);
        }
        if let Some(range) = stated_range(&rest) {
            match spec.sentence() {
                Some(sentence) => panic!("{page}: {key} states `{range}` besides its range ({sentence:?})"),
                None => panic!("{page}: {key} states `{range}`, but the code has no range for it (KEY_SPECS)"),
            }
        }
    }
}

#[test]
fn stated_ranges_are_found() {
    for (text, range) in [
        ("From 1 to 100000.", Some("From 1 to 100000.")),
        ("A number of seconds from above 0 to 3600.", Some("seconds from above 0 to 3600.")),
        ("A number from 0 to below 1.", Some("number from 0 to below 1.")),
        ("An integer, at least 1.", Some("at least 1.")),
        ("A number above 0 and at most 86400.", Some("number above 0")),
        ("its position, counted from 0, as in", None),
        ("may itself announce up to 604800 seconds", None),
        ("each at most 63 characters, 253 in all", None),
        ("With at least one key,", None),
    ] {
        assert_eq!(stated_range(text).as_deref(), range, "{text:?}");
    }
}

#[test]
fn hbd_yaml_5_states_the_range_of_every_key_as_hbd_has_it() {
    assert_states_the_ranges("man/hbd.yaml.5", hbd::server::config::KEY_SPECS);
}

#[test]
fn hbc_yaml_5_states_the_range_of_every_key_as_hbc_has_it() {
    assert_states_the_ranges("man/hbc.yaml.5", hbd::client::config::KEY_SPECS);
}

/// The configuration `hbd --check-config` prints for `config`, without its
/// first line (which names the file).
fn hbd_effective_config(config: &std::path::Path) -> String {
    let out = Command::new(hbd_bin()).arg("--check-config").arg("-c").arg(config).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "hbd --check-config -c {}: {stderr}", config.display());
    String::from_utf8(out.stdout).unwrap().lines().skip(1).collect::<Vec<_>>().join("\n")
}

/// `hbd --check-config` on an empty file: every built-in default.
fn hbd_defaults() -> serde_yaml::Mapping {
    let yaml = hbd_effective_config(std::path::Path::new("/dev/null"));
    serde_yaml::from_str(&yaml).unwrap()
}

#[test]
fn hbd_yaml_5_states_the_default_of_every_key_as_hbd_has_it() {
    let defaults = hbd_defaults();
    let mut file = String::new();
    for (key, default) in documented_defaults("man/hbd.yaml.5") {
        match default {
            Some(value) => file.push_str(&format!("{key}: {value}\n")),
            None => assert_eq!(
                defaults.get(key.as_str()),
                Some(&serde_yaml::Value::Null),
                "man/hbd.yaml.5 describes the default of {key} in words, but hbd has a value for it"
            ),
        }
    }
    // The page's defaults, written into a file, are the built-in configuration.
    let dir = TempDir::new("man-defaults");
    let path = dir.join("defaults.yaml");
    fs::write(&path, &file).unwrap();
    let documented: serde_yaml::Mapping = serde_yaml::from_str(&hbd_effective_config(&path)).unwrap();
    for (key, value) in &defaults {
        assert_eq!(
            documented.get(key),
            Some(value),
            "man/hbd.yaml.5 gives {key:?} another default than hbd ({value:?}); the page's defaults:\n{file}"
        );
    }
}

#[test]
fn hbc_yaml_5_states_the_default_of_every_key_as_hbc_has_it() {
    let defaults = serde_yaml::to_value(hbd::client::config::ClientConfig::default()).unwrap();
    for (key, default) in documented_defaults("man/hbc.yaml.5") {
        match default {
            // Setting the key to the page's default changes nothing.
            Some(value) => {
                let config = hbd::client::config::ClientConfig::parse(&format!("{key}: {value}\n"), "man/hbc.yaml.5")
                    .unwrap_or_else(|e| panic!("man/hbc.yaml.5: default of {key} `{value}`: {e}"));
                assert_eq!(serde_yaml::to_value(config).unwrap(), defaults, "man/hbc.yaml.5: default of {key}");
            }
            None => assert_eq!(
                defaults[key.as_str()],
                serde_yaml::Value::Null,
                "man/hbc.yaml.5 describes the default of {key} in words, but hbc has a value for it"
            ),
        }
    }
}

/// The `#key: value` lines of a configuration file the package installs:
/// the defaults it lists, uncommented, one per key.
fn listed_defaults(path: &str, keys: &[&str]) -> String {
    let text = read(path);
    let listed: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .filter(|l| l.starts_with(|c: char| c.is_ascii_lowercase()) && l.contains(':'))
        .collect();
    let names: Vec<&str> = listed.iter().map(|l| l.split(':').next().unwrap()).collect();
    assert_eq!(names, keys, "{path} lists other keys, or in another order, than the code has");
    listed.join("\n") + "\n"
}

#[test]
fn packaged_hbd_yaml_lists_every_key_with_hbds_default() {
    let listed = listed_defaults("packaging/etc/hbd.yaml", hbd::server::config::KEYS);
    let dir = TempDir::new("conffile-defaults");
    let path = dir.join("listed.yaml");
    fs::write(&path, &listed).unwrap();
    let listed: serde_yaml::Mapping = serde_yaml::from_str(&hbd_effective_config(&path)).unwrap();
    assert_eq!(listed, hbd_defaults(), "packaging/etc/hbd.yaml lists defaults that are not hbd's");
    // And the file as installed is a valid configuration.
    hbd_effective_config(std::path::Path::new("packaging/etc/hbd.yaml"));
}

#[test]
fn packaged_hbc_yaml_lists_every_key_with_hbcs_default() {
    let listed = listed_defaults("packaging/etc/hbc.yaml", hbd::client::config::KEYS);
    let config = hbd::client::config::ClientConfig::parse(&listed, "packaging/etc/hbc.yaml").unwrap();
    assert_eq!(
        serde_yaml::to_value(config).unwrap(),
        serde_yaml::to_value(hbd::client::config::ClientConfig::default()).unwrap(),
        "packaging/etc/hbc.yaml lists defaults that are not hbc's"
    );
    hbd::client::config::ClientConfig::parse(&read("packaging/etc/hbc.yaml"), "packaging/etc/hbc.yaml").unwrap();
}

#[test]
fn hbd_8_describes_every_page_and_endpoint_hbd_serves() {
    let page = read("man/hbd.8");
    // The routes of src/http.rs; pages and assets come from src/www.rs.
    let mut paths: Vec<String> =
        ["/", "/healthz", "/metrics", "/api/0/hosts", "/api/0/alerts", "/api/0/journal", "/api/0/events", "/badge/"]
            .into_iter()
            .map(String::from)
            .collect();
    // host.html is served at /hosts/NAME (checked below), the others at their names.
    let pages = hbd::server::http::www::PAGES.iter().map(|f| f.name.strip_suffix(".html").unwrap());
    paths.extend(pages.filter(|p| *p != "host").map(|p| format!("/{p}")));
    for path in paths {
        // mdoc writes a path as `.Pa /live` or inside a line of `.It Pa`.
        let documented = page.lines().any(|l| {
            l.strip_prefix(".It Pa ")
                .or(l.strip_prefix(".Pa "))
                .is_some_and(|args| args.split_whitespace().next() == Some(&path))
        });
        assert!(documented, "man/hbd.8 does not describe {path}");
    }
    for member in [
        "/api/0/hosts/ Ns Ar name",
        "Ns Pa /plugins",
        "Pa ?limit= Ns Ar N",
        ".It Pa /static/ Ns Ar file",
        ".It Pa /hosts/ Ns Ar name",
        ".It Pa /ws",
    ] {
        assert!(page.contains(member), "man/hbd.8 lacks `{member}`");
    }
    // The assets under /static/, named in `.Pa` lines.
    let named: BTreeSet<&str> = page
        .lines()
        .filter_map(|l| l.strip_prefix(".Pa "))
        .flat_map(|args| args.split([' ', ',']).filter(|w| !w.is_empty()))
        .collect();
    for asset in hbd::server::http::www::STATIC {
        assert!(named.contains(asset.name), "man/hbd.8 does not name /static/{}", asset.name);
    }
}
