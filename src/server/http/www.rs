//! The web UI's files, built into the binary so that a copied binary or the
//! .deb serves the pages with nothing else installed. `templates_dir` may
//! hold files of the same names that replace the built-in ones.
//!
//! Only the names listed here are ever served: a request cannot name any
//! other file, in `templates_dir` or elsewhere.

use std::path::Path;

/// A page or asset: its name, built-in content and content type.
pub struct File {
    pub name: &'static str,
    pub content: &'static str,
    pub content_type: &'static str,
}

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

/// Pages, served at `/<name without .html>`.
pub const PAGES: &[File] = &[
    File { name: "live.html", content: include_str!("../../../www/live.html"), content_type: HTML },
    File { name: "plugins.html", content: include_str!("../../../www/plugins.html"), content_type: HTML },
    File { name: "alerts.html", content: include_str!("../../../www/alerts.html"), content_type: HTML },
    File { name: "host.html", content: include_str!("../../../www/host.html"), content_type: HTML },
];

/// Assets, served at `/static/<name>`.
pub const STATIC: &[File] = &[
    File { name: "hbd.css", content: include_str!("../../../www/static/hbd.css"), content_type: CSS },
    File { name: "common.js", content: include_str!("../../../www/static/common.js"), content_type: JS },
    File { name: "live.js", content: include_str!("../../../www/static/live.js"), content_type: JS },
    File { name: "plugins.js", content: include_str!("../../../www/static/plugins.js"), content_type: JS },
    File { name: "alerts.js", content: include_str!("../../../www/static/alerts.js"), content_type: JS },
    File { name: "host.js", content: include_str!("../../../www/static/host.js"), content_type: JS },
];

pub fn page(name: &str) -> Option<&'static File> {
    PAGES.iter().find(|f| f.name.strip_suffix(".html") == Some(name))
}

pub fn asset(name: &str) -> Option<&'static File> {
    STATIC.iter().find(|f| f.name == name)
}

/// The file's content: from `dir` (pages at its top, assets in its
/// `static/`) when it has one of that name, else the built-in one.
pub fn content(file: &File, dir: Option<&Path>, is_asset: bool) -> String {
    if let Some(dir) = dir {
        let path = if is_asset { dir.join("static").join(file.name) } else { dir.join(file.name) };
        if let Ok(text) = std::fs::read_to_string(&path) {
            return text;
        }
    }
    file.content.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_names_are_found() {
        assert!(page("live").is_some() && page("plugins").is_some());
        assert!(page("live.html").is_none());
        assert!(asset("hbd.css").is_some());
        for hostile in ["../Cargo.toml", "..", "", "/etc/passwd", "static/../../x", "hbd.css/"] {
            assert!(asset(hostile).is_none() && page(hostile).is_none(), "{hostile}");
        }
    }

    #[test]
    fn pages_load_no_script_or_style_from_elsewhere() {
        for file in PAGES.iter().chain(STATIC) {
            // The SVG namespace is a name, not something fetched.
            let content = file.content.replace("'http://www.w3.org/2000/svg'", "");
            assert!(
                !content.contains("http://") && !content.contains("https://"),
                "{} refers to another site",
                file.name
            );
            assert!(!file.content.contains("innerHTML"), "{} builds HTML from data", file.name);
        }
    }
}
