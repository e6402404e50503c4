//! API tokens (`api_tokens_file`): who may read and who may change what
//! hbd does. Reads are open, as the Python hbd's were (its users' `curl |
//! jq` scripts keep working), unless `api_reads_need_token` says otherwise;
//! every write needs a token with the `admin` role, sent as
//! `Authorization: Bearer SECRET`. There are no cookies, so a browser never
//! sends a token by itself, and a write from another site's page is refused
//! by its `Origin` as well.
//!
//! The file has one token a line, `NAME ROLE SECRET` (`#` starts a
//! comment), and must not be readable by others: hbd refuses to start
//! otherwise. Secrets are kept only as SHA-256 digests and compared in
//! constant time; a token's name is what the journal records as `by`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use sha2::{Digest, Sha256};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Read the API (where reads need a token).
    Read,
    /// Read, and write: silences, acknowledgements, forgetting hosts.
    Admin,
}

#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    pub name: String,
    pub role: Role,
    digest: [u8; 32],
}

impl std::fmt::Debug for Token {
    /// Never the digest: nothing of a secret goes into a log.
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "Token({}, {:?})", self.name, self.role)
    }
}

/// The tokens hbd knows and whether reads need one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tokens {
    tokens: Vec<Token>,
    pub reads_need_token: bool,
}

/// Why a request may not do what it asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// No token, or one hbd does not know: 401.
    Unauthorized(&'static str),
    /// A known token without the role: 403.
    Forbidden(String),
}

/// The shortest secret hbd takes: guessing 16 random characters is not a
/// thing anyone does over HTTP.
const MIN_SECRET: usize = 16;

impl Tokens {
    pub fn new(tokens: Vec<Token>, reads_need_token: bool) -> Tokens {
        Tokens { tokens, reads_need_token }
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Who sent `authorization` (the header's value), if it names a token.
    fn holder(&self, authorization: Option<&str>) -> Option<&Token> {
        let (scheme, secret) = authorization?.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let secret = secret.trim();
        let digest: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        // Every token is compared, each in constant time: how long this
        // takes says nothing of which secret came close.
        let mut found = None;
        for token in &self.tokens {
            let differ = token.digest.iter().zip(&digest).fold(0u8, |acc, (a, b)| acc | (a ^ b));
            if differ == 0 {
                found = Some(token);
            }
        }
        found
    }

    /// May a request with this `Authorization` read (`write` false) or
    /// write? The token's name when one was given and it counts.
    pub fn allow(&self, authorization: Option<&str>, write: bool) -> Result<Option<&str>, Denied> {
        let holder = self.holder(authorization);
        if !write && !self.reads_need_token {
            return Ok(holder.map(|t| t.name.as_str()));
        }
        if self.tokens.is_empty() && write {
            return Err(Denied::Forbidden(
                "this hbd takes no writes: no api_tokens_file is configured (hbd.yaml(5))".into(),
            ));
        }
        match holder {
            None if authorization.is_none() => {
                Err(Denied::Unauthorized("a token is needed: Authorization: Bearer TOKEN"))
            }
            None => Err(Denied::Unauthorized("unknown token")),
            Some(token) if write && token.role != Role::Admin => {
                Err(Denied::Forbidden(format!("token {} may read, not write: writes need the admin role", token.name)))
            }
            Some(token) => Ok(Some(token.name.as_str())),
        }
    }
}

/// Reads `api_tokens_file`, refusing a file others may read or write.
pub fn load(path: &Path) -> Result<Vec<Token>, String> {
    let text = read_private(path)?;
    parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// The file's text, if only its owner may change it and only its owner
/// (and group) read it. Checked on the file opened, not on its name, so a
/// file swapped in between cannot pass.
fn read_private(path: &Path) -> Result<String, String> {
    let annotate = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut file = fs::File::open(path).map_err(annotate)?;
    let mode = file.metadata().map_err(annotate)?.permissions().mode() & 0o777;
    if mode & 0o027 != 0 {
        return Err(format!(
            "{} is open to others (mode {mode:04o}): it holds API secrets; chmod go-w,o-rwx {}",
            path.display(),
            path.display()
        ));
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut file, &mut text).map_err(annotate)?;
    Ok(text)
}

/// `NAME ROLE SECRET` lines; each problem names its line.
pub fn parse(text: &str) -> Result<Vec<Token>, String> {
    Ok(parse_with_secrets(text)?.into_iter().map(|(token, _)| token).collect())
}

/// The tokens with their secrets as the file gives them.
fn parse_with_secrets(text: &str) -> Result<Vec<(Token, &str)>, String> {
    let mut tokens: Vec<(Token, &str)> = Vec::new();
    for (number, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l)) {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [name, role, secret] = fields[..] else {
            return Err(format!("line {number}: expected NAME ROLE SECRET"));
        };
        // The messages name fields, never their values: a line with its
        // columns swapped would otherwise print a secret.
        let role = match role {
            "read" => Role::Read,
            "admin" => Role::Admin,
            _ => return Err(format!("line {number}: the second field is neither read nor admin")),
        };
        if name.len() > 64 || !name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-@".contains(c)) {
            return Err(format!("line {number}: the name is 1 to 64 of A-Z a-z 0-9 _ . - @"));
        }
        if secret.chars().count() < MIN_SECRET {
            return Err(format!("line {number}: the secret of {name} is shorter than {MIN_SECRET} characters"));
        }
        if tokens.iter().any(|(t, _)| t.name == name) {
            return Err(format!("line {number}: the name {name} is given twice"));
        }
        let digest: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        if tokens.iter().any(|(t, _)| t.digest == digest) {
            return Err(format!("line {number}: {name} has the secret of another token"));
        }
        tokens.push((Token { name: name.to_string(), role, digest }, secret));
    }
    Ok(tokens)
}

/// The secret of the file's first admin token, for `hbd`'s own
/// subcommands, which talk to the running daemon as its operator.
pub fn admin_secret(path: &Path) -> Result<String, String> {
    let text = read_private(path)?;
    let tokens = parse_with_secrets(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    tokens
        .into_iter()
        .find(|(token, _)| token.role == Role::Admin)
        .map(|(_, secret)| secret.to_string())
        .ok_or_else(|| format!("{} has no admin token", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str =
        "# who may do what\nalice admin alice-secret-0123456789\nbob read bob-secret-0123456789  # dashboards\n\n";

    #[test]
    fn the_file_names_roles_and_secrets() {
        let tokens = parse(FILE).unwrap();
        assert_eq!(
            tokens.iter().map(|t| (t.name.as_str(), t.role)).collect::<Vec<_>>(),
            [("alice", Role::Admin), ("bob", Role::Read)]
        );
        assert!(!format!("{tokens:?}").contains("secret"), "no secret in Debug");
        for (text, problem) in [
            ("alice admin\n", "line 1: expected NAME ROLE SECRET"),
            ("alice root alice-secret-0123456789\n", "line 1: the second field is neither read nor admin"),
            ("alice alice-secret-0123456789 admin\n", "line 1: the second field is neither read nor admin"),
            ("alice admin short\n", "shorter than 16"),
            ("a admin 0123456789abcdef\na read 0123456789abcdeg\n", "line 2: the name a is given twice"),
            ("a admin 0123456789abcdef\nb read 0123456789abcdef\n", "b has the secret of another token"),
            ("a<b admin 0123456789abcdef\n", "the name is 1 to 64"),
        ] {
            assert!(parse(text).unwrap_err().contains(problem), "{text:?}");
        }
    }

    #[test]
    fn reads_are_open_writes_need_admin() {
        let tokens = Tokens::new(parse(FILE).unwrap(), false);
        let bearer = |s: &str| format!("Bearer {s}");
        assert_eq!(tokens.allow(None, false), Ok(None));
        assert_eq!(tokens.allow(Some(&bearer("bob-secret-0123456789")), false), Ok(Some("bob")));
        assert!(matches!(tokens.allow(None, true), Err(Denied::Unauthorized(_))));
        assert!(matches!(tokens.allow(Some(&bearer("nope-nope-nope-nope")), true), Err(Denied::Unauthorized(_))));
        assert!(matches!(tokens.allow(Some("Basic YWxpY2U6eA=="), true), Err(Denied::Unauthorized(_))));
        assert_eq!(
            tokens.allow(Some("bearer  alice-secret-0123456789 "), true),
            Ok(Some("alice")),
            "the scheme in any case"
        );
        assert!(matches!(tokens.allow(Some(&bearer("bob-secret-0123456789")), true), Err(Denied::Forbidden(_))));
        assert_eq!(tokens.allow(Some(&bearer("alice-secret-0123456789")), true), Ok(Some("alice")));
        let strict = Tokens::new(parse(FILE).unwrap(), true);
        assert!(matches!(strict.allow(None, false), Err(Denied::Unauthorized(_))));
        assert_eq!(strict.allow(Some(&bearer("bob-secret-0123456789")), false), Ok(Some("bob")));
        let none = Tokens::default();
        assert!(matches!(none.allow(Some(&bearer("alice-secret-0123456789")), true), Err(Denied::Forbidden(_))));
    }

    #[test]
    fn a_file_others_may_read_is_refused() {
        let dir = std::env::temp_dir().join(format!("hbd-auth-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tokens");
        fs::write(&path, FILE).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let problem = load(&path).unwrap_err();
        assert!(problem.contains("open to others (mode 0644)") && problem.contains("chmod go-w,o-rwx"), "{problem}");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o660)).unwrap();
        assert!(load(&path).unwrap_err().contains("mode 0660"), "the group may not write it");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(load(&path).unwrap().len(), 2);
        assert_eq!(admin_secret(&path).unwrap(), "alice-secret-0123456789");
        let _ = fs::remove_dir_all(&dir);
    }
}
