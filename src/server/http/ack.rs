//! The request of `POST` and `DELETE /api/0/hosts/NAME/ack`: which alert
//! (`plugin`, `metric_path`; neither: the host-down alert) and, to
//! acknowledge, why (`comment`). Checked here, each problem naming its
//! field, so the core gets only a well-formed question.

use serde_json::Value;

use super::{percent_decode, query_pairs, truncate};
use crate::server::model::{HEARTBEAT, SILENT_FOR};

/// The longest comment taken, in characters: a sentence or two, not a log.
pub const MAX_COMMENT: usize = 1000;

/// A checked acknowledgement request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckRequest {
    pub plugin: String,
    pub metric_path: String,
    /// Some for `POST` (acknowledge), None for `DELETE` (remove).
    pub comment: Option<String>,
}

/// Parses the JSON `body` (or, for a `DELETE` without one, the `query`'s
/// `plugin` and `metric_path`). `acknowledge`: a `POST`, which needs a
/// comment.
pub fn parse(acknowledge: bool, body: &str, query: &str) -> Result<AckRequest, String> {
    let (mut plugin, mut metric_path, mut comment) = (None, None, None);
    if body.trim().is_empty() {
        for (key, value) in query_pairs(query) {
            let value =
                percent_decode(&value.replace('+', " ")).ok_or_else(|| format!("{key}: malformed percent-encoding"))?;
            match key {
                "plugin" => plugin = Some(value),
                "metric_path" => metric_path = Some(value),
                "comment" => comment = Some(value),
                other => return Err(format!("unknown query parameter {:?}", truncate(other))),
            }
        }
    } else {
        let value: Value = serde_json::from_str(body).map_err(|e| format!("the body is not JSON: {e}"))?;
        let Value::Object(fields) = value else {
            return Err("the body must be a JSON object".into());
        };
        for (key, value) in fields {
            let text = || match value {
                Value::String(ref s) => Ok(s.clone()),
                Value::Null => Err(format!("{key}: a string, not null (leave it out instead)")),
                _ => Err(format!("{key} must be a string")),
            };
            match key.as_str() {
                "plugin" => plugin = Some(text()?),
                "metric_path" => metric_path = Some(text()?),
                "comment" => comment = Some(text()?),
                other => return Err(format!("unknown field {:?}", truncate(other))),
            }
        }
    }
    let (plugin, metric_path) = match (plugin, metric_path) {
        (None, None) => (HEARTBEAT.to_string(), SILENT_FOR.to_string()),
        (None, Some(_)) => return Err("metric_path needs a plugin".into()),
        (Some(p), _) if p.is_empty() => return Err("plugin is empty".into()),
        // A plugin alone: its "stopped reporting" alert, whose path is empty.
        (Some(p), m) => (p, m.unwrap_or_default()),
    };
    let comment = match (acknowledge, comment.map(|c| c.trim().to_string())) {
        (false, _) => None,
        (true, None) => return Err("comment is required: say who is on it and why".into()),
        (true, Some(c)) if c.is_empty() => return Err("comment is empty".into()),
        (true, Some(c)) if c.chars().count() > MAX_COMMENT => {
            return Err(format!("comment is longer than {MAX_COMMENT} characters"))
        }
        (true, Some(c)) => Some(c),
    };
    Ok(AckRequest { plugin, metric_path, comment })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_and_queries() {
        let host_down = parse(true, r#"{"comment": " rebooting <b>it</b> "}"#, "").unwrap();
        assert_eq!(
            host_down,
            AckRequest {
                plugin: HEARTBEAT.into(),
                metric_path: SILENT_FOR.into(),
                comment: Some("rebooting <b>it</b>".into())
            }
        );
        let disk =
            parse(true, r#"{"plugin":"disk_monitor","metric_path":"partitions./.percent","comment":"x"}"#, "").unwrap();
        assert_eq!((disk.plugin.as_str(), disk.metric_path.as_str()), ("disk_monitor", "partitions./.percent"));
        let stale = parse(true, r#"{"plugin":"cpu_monitor","comment":"x"}"#, "").unwrap();
        assert_eq!(stale.metric_path, "");
        let removal = parse(false, "", "plugin=disk_monitor&metric_path=partitions.%2F.percent").unwrap();
        assert_eq!((removal.metric_path.as_str(), removal.comment), ("partitions./.percent", None));
        assert_eq!(parse(false, "", "").unwrap().plugin, HEARTBEAT);
        assert_eq!(parse(false, r#"{"comment": "ignored"}"#, "").unwrap().comment, None);
    }

    #[test]
    fn bad_requests_name_the_problem() {
        for (acknowledge, body, query, expected) in [
            (true, "", "", "comment is required"),
            (true, "{\"comment\": \"   \"}", "", "comment is empty"),
            (true, "{\"comment\": 5}", "", "comment must be a string"),
            (true, "{\"comment\": null}", "", "comment: a string, not null"),
            (true, "[1]", "", "must be a JSON object"),
            (true, "{\"comment\": \"x\"", "", "not JSON"),
            (true, "{\"comment\": \"x\", \"plugn\": \"p\"}", "", "unknown field \"plugn\""),
            (true, "{\"comment\": \"x\", \"metric_path\": \"a\"}", "", "metric_path needs a plugin"),
            (true, "{\"comment\": \"x\", \"plugin\": \"\"}", "", "plugin is empty"),
            (false, "", "plugin=%zz", "plugin: malformed"),
            (false, "", "host=x", "unknown query parameter"),
        ] {
            let error = parse(acknowledge, body, query).unwrap_err();
            assert!(error.contains(expected), "{body} {query}: {error}");
        }
        let long = format!("{{\"comment\": \"{}\"}}", "x".repeat(MAX_COMMENT + 1));
        assert!(parse(true, &long, "").unwrap_err().contains("longer than 1000"));
    }
}
