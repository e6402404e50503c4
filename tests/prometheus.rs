//! The Prometheus rules the package ships (packaging/prometheus): promtool
//! accepts them, their own unit tests pass, and every hbd metric they name
//! is one a running hbd serves.

mod support;

use std::collections::BTreeSet;
use std::process::Command;

use support::*;

const RULES: &str = "packaging/prometheus/hbd.rules.yml";

fn promtool(args: &[&str]) {
    let out = Command::new("promtool").args(args).current_dir("packaging/prometheus").output().expect("run promtool");
    assert!(
        out.status.success(),
        "promtool {}:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_rules_pass_promtool_and_their_tests() {
    promtool(&["check", "rules", "hbd.rules.yml"]);
    promtool(&["test", "rules", "hbd.rules.test.yml"]);
}

#[test]
fn the_rules_name_only_metrics_hbd_serves() {
    let rules = std::fs::read_to_string(RULES).unwrap();
    let named: BTreeSet<&str> = rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("hbd_"))
        .collect();
    assert!(named.len() >= 5, "the rules name hbd's metrics: {named:?}");
    let dir = TempDir::new("prometheus-rules");
    // A service, so that the per-service families have a sample each.
    let hbd = Hbd::start(&dir, "mattermost:\n  webhook_url: http://127.0.0.1:9/hooks/x\n");
    let (status, _, body) = http_request(hbd.http, "GET", "/metrics", &[]);
    assert_eq!(status, 200);
    for metric in named {
        assert!(body.lines().any(|l| l.starts_with(&format!("# TYPE {metric} "))), "/metrics has no {metric}");
    }
}
