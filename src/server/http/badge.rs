//! Status badges for a wiki or a README: `/badge/NAME.svg` (a host's or a
//! job's state) and `/badge/tag/TAG.svg` (how many of a tag's hosts are
//! up), as small SVGs in the flat style shields.io made common: a grey
//! label, a coloured value.
//!
//! Everything put into the SVG is XML-escaped (and stripped of characters
//! XML cannot carry at all), so a hostile name in the URL shows as text.
//! Badges are cacheable (`max-age`) and carry an ETag of their bytes.

use crate::server::model::{Host, Level, Status};
use crate::wire::truncate_chars;

/// How long a wiki or a proxy may keep a badge before asking again.
pub const CACHE: &str = "max-age=30";
/// A label or value is cut to this many characters.
const MAX_TEXT: usize = 64;

const GREEN: &str = "#4c1";
const RED: &str = "#e05d44";
const ORANGE: &str = "#fe7d37";
const YELLOW: &str = "#dfb317";
const GREY: &str = "#9f9f9f";

/// A rendered badge: its status code (404 for what hbd does not know), SVG and ETag.
#[derive(Debug, Clone, PartialEq)]
pub struct Badge {
    pub status: u16,
    pub svg: String,
    pub etag: String,
}

/// The badge of host (or job) `name`: its state, or `unknown` (404) when
/// hbd does not know it. An up host (or job) with a CRITICAL or WARNING
/// alert says so instead of `up`: a job whose last run failed is up (it
/// ran in time) but not well.
pub fn host(name: &str, host: Option<&Host>) -> Badge {
    match host {
        Some(h) => {
            let (value, colour) = match (h.status, h.alert_level) {
                (Status::Up, Level::Critical) => ("critical", RED),
                (Status::Up, Level::Warning) => ("warning", YELLOW),
                (Status::Up, _) => ("up", GREEN),
                (Status::Down, _) => ("down", RED),
                (Status::Unreachable, _) => ("unreachable", ORANGE),
            };
            badge(200, &h.name, value, colour)
        }
        None => badge(404, name, "unknown", GREY),
    }
}

/// The badge of `tag`: `N/M up` over the hosts that carry it (green when
/// all are up without a CRITICAL alert, red when none is up, orange
/// between), `unknown` (404) when no host does.
pub fn tag(tag: &str, hosts: &[Host]) -> Badge {
    let tagged: Vec<&Host> = hosts.iter().filter(|h| h.tags.iter().any(|t| t == tag)).collect();
    if tagged.is_empty() {
        return badge(404, tag, "unknown", GREY);
    }
    let up = tagged.iter().filter(|h| h.status == Status::Up).count();
    let critical = tagged.iter().any(|h| h.alert_level == Level::Critical);
    let colour = match up {
        0 => RED,
        n if n == tagged.len() && !critical => GREEN,
        _ => ORANGE,
    };
    badge(200, tag, &format!("{up}/{} up", tagged.len()), colour)
}

fn badge(status: u16, label: &str, value: &str, colour: &str) -> Badge {
    let svg = svg(label, value, colour);
    let etag = format!("\"{:016x}\"", fnv1a(svg.as_bytes()));
    Badge { status, svg, etag }
}

/// The flat badge: label on grey, value on `colour`, white text with a
/// faint shadow, widths estimated from Verdana's at 11 px.
fn svg(label: &str, value: &str, colour: &str) -> String {
    let (label, value) = (truncate_chars(label, MAX_TEXT), truncate_chars(value, MAX_TEXT));
    let (lw, vw) = (text_width(label) + 10, text_width(value) + 10);
    let width = lw + vw;
    let (lx, vx) = (lw * 5, lw * 10 + vw * 5);
    let (l, v) = (escape(label), escape(value));
    format!(
        concat!(
            r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="20" role="img" aria-label="{l}: {v}">"##,
            r##"<title>{l}: {v}</title>"##,
            r##"<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient>"##,
            r##"<clipPath id="r"><rect width="{width}" height="20" rx="3" fill="#fff"/></clipPath>"##,
            r##"<g clip-path="url(#r)"><rect width="{lw}" height="20" fill="#555"/><rect x="{lw}" width="{vw}" height="20" fill="{colour}"/><rect width="{width}" height="20" fill="url(#s)"/></g>"##,
            r##"<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="110">"##,
            r##"<text x="{lx}" y="150" fill="#010101" fill-opacity=".3" transform="scale(.1)">{l}</text>"##,
            r##"<text x="{lx}" y="140" transform="scale(.1)">{l}</text>"##,
            r##"<text x="{vx}" y="150" fill="#010101" fill-opacity=".3" transform="scale(.1)">{v}</text>"##,
            r##"<text x="{vx}" y="140" transform="scale(.1)">{v}</text>"##,
            "</g></svg>\n"
        ),
        width = width,
        lw = lw,
        vw = vw,
        lx = lx,
        vx = vx,
        l = l,
        v = v,
        colour = colour,
    )
}

/// Roughly how wide `text` is in Verdana at 11 px: narrow, wide and
/// ordinary letters apart (a badge a few pixels too wide is fine).
fn text_width(text: &str) -> usize {
    text.chars()
        .map(|c| match c {
            'i' | 'j' | 'l' | 'I' | '.' | ',' | ':' | ';' | '!' | '|' | '\'' => 4,
            'f' | 'r' | 't' | '-' | '/' | '(' | ')' | ' ' => 5,
            'm' | 'w' | 'M' | 'W' | '%' | '@' => 10,
            c if c.is_ascii_uppercase() => 8,
            _ => 7,
        })
        .sum()
}

/// `text` safe inside XML text and attribute values: the five special
/// characters as entities, and what XML 1.0 cannot carry at all (control
/// characters) left out.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' || ('\u{7f}'..='\u{9f}').contains(&c) => {}
            c => out.push(c),
        }
    }
    out
}

/// FNV-1a, 64 bits: an ETag needs only to change when the bytes do.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host_with(name: &str, status: Status, tags: &[&str]) -> Host {
        Host { status, tags: tags.iter().map(|t| t.to_string()).collect(), ..Host::for_test(name) }
    }

    #[test]
    fn a_hosts_state_and_colour() {
        let up = host("web1", Some(&host_with("web1", Status::Up, &[])));
        assert_eq!(up.status, 200);
        assert!(up.svg.contains(">web1</text>") && up.svg.contains(">up</text>") && up.svg.contains(GREEN));
        let down = host("web1", Some(&host_with("web1", Status::Down, &[])));
        assert!(down.svg.contains(">down</text>") && down.svg.contains(RED));
        assert_ne!(up.etag, down.etag, "the ETag follows the bytes");
        let mut failing = host_with("backup", Status::Up, &[]);
        failing.alert_level = Level::Critical;
        let b = host("backup", Some(&failing));
        assert!(b.svg.contains(">critical</text>") && b.svg.contains(RED), "a failed job's run: {}", b.svg);
        failing.alert_level = Level::Warning;
        assert!(host("backup", Some(&failing)).svg.contains(">warning</text>"));
        let unknown = host("nosuch", None);
        assert_eq!(unknown.status, 404);
        assert!(unknown.svg.contains(">unknown</text>"));
    }

    #[test]
    fn a_tags_count() {
        let hosts = [
            host_with("a", Status::Up, &["db"]),
            host_with("b", Status::Down, &["db"]),
            host_with("c", Status::Up, &["web"]),
        ];
        let b = tag("db", &hosts);
        assert!(b.svg.contains(">1/2 up</text>") && b.svg.contains(ORANGE), "{}", b.svg);
        assert!(tag("web", &hosts).svg.contains(GREEN));
        let mut hosts = hosts;
        hosts[2].alert_level = Level::Critical;
        assert!(tag("web", &hosts).svg.contains(ORANGE), "all up, one critical");
        assert_eq!(tag("nosuch", &hosts).status, 404);
    }

    #[test]
    fn hostile_names_are_text() {
        let b = host("<script>alert('x')</script>&\u{1}\"", None);
        assert!(!b.svg.contains("<script"), "{}", b.svg);
        assert!(b.svg.contains("&lt;script&gt;alert(&apos;x&apos;)&lt;/script&gt;&amp;&quot;"), "{}", b.svg);
        assert!(!b.svg.contains('\u{1}'));
        let long = host(&"x".repeat(1000), None);
        assert!(long.svg.len() < 3000);
    }
}
