//! The write token on disk: read it, or create it (random, mode 0600) at first
//! start. The token itself is never logged or shown in errors.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

/// Random bytes in a new token (hex-encoded: 64 characters).
pub const TOKEN_BYTES: usize = 32;
/// Shortest token accepted from a file an operator wrote.
pub const MIN_TOKEN_LEN: usize = 16;

/// A bearer token. Debug never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// A token from text (surrounding whitespace removed); too short or with
    /// characters that cannot travel in an HTTP header is an error.
    pub fn new(text: &str) -> Result<Self> {
        let t = text.trim();
        if t.len() < MIN_TOKEN_LEN {
            bail!("the token is shorter than {MIN_TOKEN_LEN} characters");
        }
        if !t.bytes().all(|b| b.is_ascii_graphic()) {
            bail!("the token holds characters other than printable ASCII");
        }
        Ok(Self(t.to_string()))
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// The secret itself, for the client side of the API only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A new random token from the kernel's CSPRNG.
    pub fn random() -> Result<Self> {
        let mut buf = [0u8; TOKEN_BYTES];
        getrandom::fill(&mut buf).context("reading random bytes for the token (getrandom)")?;
        Ok(Self(buf.iter().map(|b| format!("{b:02x}")).collect()))
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Where the token lives when `--token-file` is not given.
pub fn default_token_file(state_dir: &Path) -> PathBuf {
    state_dir.join("token")
}

/// Whether [`load_or_create`] made a new token or read an existing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenOrigin {
    Created,
    Existing,
}

/// Read the token at `path`; when the file does not exist, create it (and its
/// directory, mode 0700) with a new random token, mode 0600, without
/// replacing a file another process created at the same moment.
///
/// An existing file that group or others may read or write is refused: the
/// token would not be a secret.
pub fn load_or_create(path: &Path) -> Result<(Token, TokenOrigin)> {
    match read(path) {
        Ok(t) => return Ok((t, TokenOrigin::Existing)),
        Err(e) if is_not_found(&e) => {}
        Err(e) => return Err(e),
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::secure_fs::ensure_dir(dir).map_err(|e| match e {
            crate::secure_fs::TrustError::Io { .. } => anyhow!(
                "the token directory: {e}: pass --state-dir (or --token-file) with a directory \
                 this user can write"
            ),
            e => anyhow!("the token directory: {e}"),
        })?;
    }
    let token = Token::random()?;
    // Whole or not at all: an empty file left by a full disk or a crash here
    // would stop every later start ("the token is shorter than ...").
    match crate::secure_fs::create_file_atomically(path, format!("{}\n", token.0).as_bytes()) {
        Ok(()) => Ok((token, TokenOrigin::Created)),
        // Someone else created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            read(path).map(|t| (t, TokenOrigin::Existing))
        }
        Err(e) => Err(e).with_context(|| format!("creating the token file {}", path.display())),
    }
}

fn is_not_found(e: &anyhow::Error) -> bool {
    e.downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::NotFound)
}

/// Read an existing token file: not through a symlink, a regular file owned
/// by this user that only its owner can read (checked on the open file).
pub fn read(path: &Path) -> Result<Token> {
    let mut file = match crate::secure_fs::open_secret(path) {
        Ok(f) => f,
        Err(crate::secure_fs::TrustError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            return Err(source.into())
        }
        Err(e) => bail!("the token file: {e}"),
    };
    let mut text = String::new();
    std::io::Read::read_to_string(&mut file, &mut text)
        .with_context(|| format!("reading the token file {}", path.display()))?;
    Token::new(&text).map_err(|e| anyhow!("the token file {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_tokens_differ_and_are_hex() {
        let a = Token::random().unwrap();
        let b = Token::random().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 2 * TOKEN_BYTES);
        assert!(a.expose().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(format!("{a:?}"), "Token(<redacted>)");
    }

    #[test]
    fn short_or_binary_tokens_are_refused() {
        assert!(Token::new("short").is_err());
        assert!(Token::new("0123456789abcdef\u{7f}").is_err());
        assert!(Token::new("  0123456789abcdef \n").is_ok());
    }
}
