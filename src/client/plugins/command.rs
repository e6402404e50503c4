//! Runs an external command for `nagios_runner` and `exec`: the command line
//! split into words here, without a shell, then run by the shared
//! [`crate::process::run`] (own process group, output capped, the whole
//! group killed on timeout so a check that forks helpers cannot leave them behind).

pub use crate::process::run;

/// Splits a command line into words: whitespace separates, single quotes
/// keep everything literal, double quotes and backslashes work as in sh.
/// There is no expansion of variables, globs or pipes; write `sh -c '…'` for those.
pub fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(format!("unterminated ' in `{line}`")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(format!("unterminated \" in `{line}`")),
                        },
                        Some(c) => word.push(c),
                        None => return Err(format!("unterminated \" in `{line}`")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => word.push(c),
                    None => return Err(format!("trailing \\ in `{line}`")),
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    if words.is_empty() {
        return Err("empty command".into());
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn split_like_sh_without_expansion() {
        assert_eq!(
            split_words("/bin/check -w 5,4,3 -c 10,8,6").unwrap(),
            words(&["/bin/check", "-w", "5,4,3", "-c", "10,8,6"])
        );
        assert_eq!(
            split_words(r#"a 'b c' "d \"e\"" f\ g '' $HOME"#).unwrap(),
            words(&["a", "b c", "d \"e\"", "f g", "", "$HOME"])
        );
        assert!(split_words("a 'b").is_err());
        assert!(split_words("   ").is_err());
    }
}
