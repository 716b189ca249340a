//! RS256 tokens as Gthulhu's clients expect them: a client proves it holds the
//! public half of our RSA key (it sends the PEM), gets a signed JWT, and shows
//! that JWT as a bearer token on later calls.
//!
//! Threat model, the same as Gthulhu's: the public key is the credential.
//! Whoever can read the public key file can get a token, so that file must be
//! handed out like a password. The private key never leaves this process and
//! its file; errors and Debug output never contain a token or key material.

use std::collections::HashSet;
use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey, EncodeRsaPublicKey};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey, LineEnding};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde::{Deserialize, Serialize};

/// The `iss` claim of every token, the value Gthulhu's server uses.
pub const ISSUER: &str = "bss-api-server";
/// How long a token stays valid unless configured otherwise.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Size of a key generated at first start, as Gthulhu's server generates it.
pub const GENERATED_KEY_BITS: usize = 2048;
/// The only signature algorithm issued and accepted.
const ALGORITHM: Algorithm = Algorithm::RS256;

/// Why a key could not be loaded, a token not issued, or not accepted.
///
/// None of the variants carries the token or key material, so they can be
/// logged and sent back as they are. Every variant from
/// [`JwtError::PublicKeyNotPem`] on is the client's fault (HTTP 401).
#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    #[error("cannot read the JWT signing key {path}: {source}")]
    ReadKey {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the JWT signing key {path} is not a regular file")]
    KeyNotAFile { path: PathBuf },
    #[error(
        "the JWT signing key {path} has mode {mode:04o}: group and others may use it; \
         run chmod 600 on it (in Kubernetes, give its Secret volume defaultMode 0400)"
    )]
    KeyTooOpen { path: PathBuf, mode: u32 },
    #[error("the JWT signing key {path} is not an RSA private key in PEM (PKCS#1 or PKCS#8)")]
    KeyNotRsaPem { path: PathBuf },
    #[error("cannot generate an RSA key: {0}")]
    GenerateKey(String),
    #[error("cannot encode the RSA key: {0}")]
    EncodeKey(String),
    #[error("cannot create the JWT signing key {path} (its directory must exist): {source}")]
    CreateKey {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot sign a token: {0}")]
    Sign(String),
    #[error("the public key is not a PEM-encoded RSA public key (PKIX, BEGIN PUBLIC KEY)")]
    PublicKeyNotPem,
    #[error("the public key does not match this server's signing key")]
    PublicKeyMismatch,
    #[error("the token is malformed")]
    Malformed,
    #[error("the token is not signed with RS256")]
    WrongAlgorithm,
    #[error("the token signature does not verify")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was not issued by {ISSUER}")]
    WrongIssuer,
    #[error("the token lacks the {0} claim")]
    MissingClaim(String),
}

impl JwtError {
    /// Whether the error is about what a client sent (answer 401) rather than
    /// about this server's key or signing (answer 500, or fail at start).
    pub fn is_client_error(&self) -> bool {
        !matches!(
            self,
            Self::ReadKey { .. }
                | Self::KeyNotAFile { .. }
                | Self::KeyTooOpen { .. }
                | Self::KeyNotRsaPem { .. }
                | Self::GenerateKey(_)
                | Self::EncodeKey(_)
                | Self::CreateKey { .. }
                | Self::Sign(_)
        )
    }
}

/// The claims of a token, as Gthulhu's server writes them. A claim missing
/// from a token reads as empty here, so that the required ones (`exp`,
/// `nbf`, `iss`, `sub`) are reported by name when checked.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Claims {
    pub client_id: String,
    pub iss: String,
    pub sub: String,
    pub exp: i64,
    pub nbf: i64,
    pub iat: i64,
}

/// A token just issued, and when it stops being valid (Unix seconds).
#[derive(Clone, PartialEq, Eq)]
pub struct Issued {
    pub token: String,
    pub expired_at_unix: i64,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("token", &"<redacted>")
            .field("expired_at_unix", &self.expired_at_unix)
            .finish()
    }
}

/// Whether the signing key was read from its file or generated just now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyOrigin {
    Loaded,
    Generated,
}

/// Our RSA key pair and token lifetime: issues and verifies tokens.
pub struct JwtKeys {
    public: RsaPublicKey,
    public_pem: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    token_lifetime: Duration,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys")
            .field("modulus_bits", &(self.public.size() * 8))
            .field("token_lifetime", &self.token_lifetime)
            .finish_non_exhaustive()
    }
}

impl JwtKeys {
    /// Read the private key at `path`; when no file is there, generate a
    /// 2048-bit key and write it there (PKCS#1 PEM, mode 0600), without
    /// following a symlink and without replacing a file another process
    /// created at the same moment. The directory must exist.
    pub fn load_or_generate(
        path: &Path,
        token_lifetime: Duration,
    ) -> Result<(Self, KeyOrigin), JwtError> {
        match read_private_key(path) {
            Ok(key) => return Ok((Self::new(key, token_lifetime)?, KeyOrigin::Loaded)),
            // A dangling symlink is not a missing key: generate nothing for it.
            Err(JwtError::ReadKey { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound
                    && fs::symlink_metadata(path).is_err() => {}
            Err(e) => return Err(e),
        }
        let key = generate_private_key()?;
        match write_new_private_key(path, &key) {
            Ok(()) => Ok((Self::new(key, token_lifetime)?, KeyOrigin::Generated)),
            // Someone else created it first: use theirs.
            Err(JwtError::CreateKey { source, .. })
                if source.kind() == std::io::ErrorKind::AlreadyExists =>
            {
                let key = read_private_key(path)?;
                Ok((Self::new(key, token_lifetime)?, KeyOrigin::Loaded))
            }
            Err(e) => Err(e),
        }
    }

    /// Keys from a private key already in memory.
    pub fn new(private: RsaPrivateKey, token_lifetime: Duration) -> Result<Self, JwtError> {
        let public = private.to_public_key();
        let public_pem = public
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| JwtError::EncodeKey(e.to_string()))?;
        let private_der = private
            .to_pkcs1_der()
            .map_err(|e| JwtError::EncodeKey(e.to_string()))?;
        let public_der = public
            .to_pkcs1_der()
            .map_err(|e| JwtError::EncodeKey(e.to_string()))?;
        let mut validation = Validation::new(ALGORITHM);
        validation.leeway = 0;
        validation.validate_nbf = true;
        validation.set_issuer(&[ISSUER]);
        validation.required_spec_claims = ["exp", "nbf", "iss", "sub"]
            .into_iter()
            .map(String::from)
            .collect::<HashSet<_>>();
        Ok(Self {
            encoding: EncodingKey::from_rsa_der(private_der.as_bytes()),
            decoding: DecodingKey::from_rsa_der(public_der.as_bytes()),
            public,
            public_pem,
            validation,
            token_lifetime,
        })
    }

    /// The public half as PEM (PKIX, `BEGIN PUBLIC KEY`): what a client must
    /// present to get a token.
    pub fn public_key_pem(&self) -> &str {
        &self.public_pem
    }

    pub fn token_lifetime(&self) -> Duration {
        self.token_lifetime
    }

    /// A token for a client that presented `public_key_pem`, which must be
    /// our public key. Without a client id (absent or empty) one is made up
    /// from the time, as Gthulhu's server does.
    pub fn issue(&self, public_key_pem: &str, client_id: Option<&str>) -> Result<Issued, JwtError> {
        let presented = parse_public_key_pem(public_key_pem)?;
        if presented != self.public {
            return Err(JwtError::PublicKeyMismatch);
        }
        let now_unix = unix_now();
        let client_id = match client_id.filter(|id| !id.is_empty()) {
            Some(id) => id.to_string(),
            None => format!("client_{now_unix}"),
        };
        let lifetime_s = i64::try_from(self.token_lifetime.as_secs()).unwrap_or(i64::MAX);
        let claims = Claims {
            sub: client_id.clone(),
            client_id,
            iss: ISSUER.to_string(),
            iat: now_unix,
            nbf: now_unix,
            exp: now_unix.saturating_add(lifetime_s),
        };
        let token = self.sign(&claims)?;
        Ok(Issued {
            token,
            expired_at_unix: claims.exp,
        })
    }

    fn sign(&self, claims: &Claims) -> Result<String, JwtError> {
        jsonwebtoken::encode(&Header::new(ALGORITHM), claims, &self.encoding)
            .map_err(|e| JwtError::Sign(e.to_string()))
    }

    /// The claims of `token` if we signed it with RS256, it is within its
    /// validity window and names our issuer.
    pub fn verify(&self, token: &str) -> Result<Claims, JwtError> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| verify_error(e.into_kind()))
    }
}

/// Our own words for the library's reasons, so that nothing the library
/// might quote from the token reaches a log or a response.
fn verify_error(kind: ErrorKind) -> JwtError {
    match kind {
        ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::MissingAlgorithm => JwtError::WrongAlgorithm,
        ErrorKind::InvalidSignature | ErrorKind::Crypto(_) | ErrorKind::InvalidRsaKey(_) => {
            JwtError::BadSignature
        }
        ErrorKind::ExpiredSignature => JwtError::Expired,
        ErrorKind::ImmatureSignature => JwtError::NotYetValid,
        ErrorKind::InvalidIssuer => JwtError::WrongIssuer,
        ErrorKind::MissingRequiredClaim(claim) => JwtError::MissingClaim(claim),
        _ => JwtError::Malformed,
    }
}

/// An RSA public key from PEM (PKIX), tolerating the surrounding whitespace
/// and CRLF line ends that files and web forms add.
fn parse_public_key_pem(text: &str) -> Result<RsaPublicKey, JwtError> {
    let normalized = text.trim().replace("\r\n", "\n");
    RsaPublicKey::from_public_key_pem(&normalized).map_err(|_| JwtError::PublicKeyNotPem)
}

/// Read an existing private key, checking that only its owner can use it.
/// Symlinks are followed (Kubernetes mounts Secrets through them).
fn read_private_key(path: &Path) -> Result<RsaPrivateKey, JwtError> {
    let read_err = |source| JwtError::ReadKey {
        path: path.to_path_buf(),
        source,
    };
    let mut file = fs::File::open(path).map_err(read_err)?;
    let meta = file.metadata().map_err(read_err)?;
    if !meta.is_file() {
        return Err(JwtError::KeyNotAFile {
            path: path.to_path_buf(),
        });
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(JwtError::KeyTooOpen {
            path: path.to_path_buf(),
            mode,
        });
    }
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(read_err)?;
    let normalized = text.trim().replace("\r\n", "\n");
    RsaPrivateKey::from_pkcs1_pem(&normalized)
        .or_else(|_| RsaPrivateKey::from_pkcs8_pem(&normalized))
        .map_err(|_| JwtError::KeyNotRsaPem {
            path: path.to_path_buf(),
        })
}

fn generate_private_key() -> Result<RsaPrivateKey, JwtError> {
    RsaPrivateKey::new(&mut rsa::rand_core::OsRng, GENERATED_KEY_BITS)
        .map_err(|e| JwtError::GenerateKey(e.to_string()))
}

/// Write `key` to a new file at `path` ([`crate::secure_fs::create_file_atomically`]):
/// the file appears whole or not at all, so neither a full disk nor a crash
/// leaves a broken key for the next start to refuse.
fn write_new_private_key(path: &Path, key: &RsaPrivateKey) -> Result<(), JwtError> {
    let create_err = |source| JwtError::CreateKey {
        path: path.to_path_buf(),
        source,
    };
    let pem = key
        .to_pkcs1_pem(LineEnding::LF)
        .map_err(|e| JwtError::EncodeKey(e.to_string()))?;
    crate::secure_fs::create_file_atomically(path, pem.as_bytes()).map_err(create_err)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs8::EncodePrivateKey;
    use std::os::unix::fs::PermissionsExt;
    use std::sync::OnceLock;

    const LIFETIME: Duration = Duration::from_secs(3600);

    /// A fresh empty directory for one test, removed with what it holds
    /// when dropped (the keys in it are private keys).
    fn temp_dir() -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix("scx_pilot-jwt-")
            .tempdir()
            .unwrap()
    }

    /// Our key, generated once through the first-start path for all tests:
    /// the keys, and the file it wrote (its text and permission bits; the
    /// directory is gone once they are read).
    struct Ours {
        keys: JwtKeys,
        pem: String,
        mode: u32,
    }

    fn ours() -> &'static Ours {
        static OURS: OnceLock<Ours> = OnceLock::new();
        OURS.get_or_init(|| {
            let dir = temp_dir();
            let path = dir.path().join("jwt.key");
            let (keys, origin) = JwtKeys::load_or_generate(&path, LIFETIME).unwrap();
            assert_eq!(origin, KeyOrigin::Generated);
            Ours {
                keys,
                pem: fs::read_to_string(&path).unwrap(),
                mode: fs::metadata(&path).unwrap().mode() & 0o777,
            }
        })
    }

    fn keys() -> &'static JwtKeys {
        &ours().keys
    }

    /// Our key in a new file `name` of `dir`, with permission bits `mode`.
    fn our_key_file(dir: &tempfile::TempDir, name: &str, mode: u32) -> PathBuf {
        let path = dir.path().join(name);
        fs::write(&path, &ours().pem).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    /// Someone else's private key.
    fn other_private() -> &'static RsaPrivateKey {
        static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
        KEY.get_or_init(|| generate_private_key().unwrap())
    }

    fn b64url(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
            for i in 0..=chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            }
        }
        out
    }

    fn claims_now(offset_s: i64) -> Claims {
        let now = unix_now() + offset_s;
        Claims {
            client_id: "c".into(),
            iss: ISSUER.into(),
            sub: "c".into(),
            iat: now,
            nbf: now,
            exp: now + 60,
        }
    }

    /// The refusal for `token`, checking it does not repeat the token.
    fn refusal(token: &str) -> JwtError {
        let err = keys().verify(token).expect_err("token must be refused");
        assert!(err.is_client_error(), "{err:?}");
        let shown = format!("{err} {err:?}");
        for part in token.split('.').filter(|p| p.len() > 8) {
            assert!(!shown.contains(part), "error repeats the token: {shown}");
        }
        err
    }

    #[test]
    fn issued_token_verifies_with_gthulhu_claims() {
        let issued = keys()
            .issue(keys().public_key_pem(), Some("node-1"))
            .unwrap();
        let claims = keys().verify(&issued.token).unwrap();
        assert_eq!(claims.client_id, "node-1");
        assert_eq!(claims.sub, "node-1");
        assert_eq!(claims.iss, ISSUER);
        assert_eq!(claims.nbf, claims.iat);
        assert_eq!(claims.exp - claims.iat, LIFETIME.as_secs() as i64);
        assert_eq!(issued.expired_at_unix, claims.exp);
        assert!((claims.iat - unix_now()).abs() <= 2);
        let header = jsonwebtoken::decode_header(&issued.token).unwrap();
        assert_eq!(header.alg, Algorithm::RS256);
        assert_eq!(header.typ.as_deref(), Some("JWT"));
    }

    #[test]
    fn client_id_is_made_up_when_absent_or_empty() {
        for id in [None, Some("")] {
            let issued = keys().issue(keys().public_key_pem(), id).unwrap();
            let claims = keys().verify(&issued.token).unwrap();
            assert!(claims.client_id.starts_with("client_"), "{claims:?}");
            assert_eq!(claims.sub, claims.client_id);
        }
    }

    #[test]
    fn presented_key_may_carry_crlf_and_surrounding_whitespace() {
        let pem = keys().public_key_pem();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        let crlf = format!("\r\n  {}\r\n\r\n", pem.replace('\n', "\r\n"));
        assert!(keys().issue(&crlf, None).is_ok());
        // A web form trims the final newline.
        assert!(keys().issue(pem.trim_end(), None).is_ok());
    }

    #[test]
    fn other_public_key_is_refused() {
        let other = other_private()
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        let err = keys().issue(&other, None).unwrap_err();
        assert!(matches!(err, JwtError::PublicKeyMismatch), "{err:?}");
        assert!(err.is_client_error());
    }

    #[test]
    fn non_pkix_or_garbage_public_keys_are_refused() {
        let pkcs1 = keys().public.to_pkcs1_pem(LineEnding::LF).unwrap();
        let private = other_private().to_pkcs1_pem(LineEnding::LF).unwrap();
        for text in ["", "not a key", pkcs1.as_str(), private.as_str()] {
            let err = keys().issue(text, None).unwrap_err();
            assert!(matches!(err, JwtError::PublicKeyNotPem), "{err:?}");
        }
    }

    #[test]
    fn expired_token_is_refused() {
        let mut claims = claims_now(-120);
        claims.exp = unix_now() - 1;
        let token = keys().sign(&claims).unwrap();
        assert!(matches!(refusal(&token), JwtError::Expired));
    }

    #[test]
    fn token_from_the_future_is_refused() {
        let token = keys().sign(&claims_now(300)).unwrap();
        assert!(matches!(refusal(&token), JwtError::NotYetValid));
    }

    #[test]
    fn wrong_or_missing_issuer_is_refused() {
        let mut claims = claims_now(0);
        claims.iss = "someone-else".into();
        let token = keys().sign(&claims).unwrap();
        assert!(matches!(refusal(&token), JwtError::WrongIssuer));

        let mut bare = serde_json::to_value(claims_now(0)).unwrap();
        bare.as_object_mut().unwrap().remove("iss");
        let token = jsonwebtoken::encode(&Header::new(ALGORITHM), &bare, &keys().encoding).unwrap();
        let err = refusal(&token);
        assert!(
            matches!(&err, JwtError::MissingClaim(c) if c == "iss"),
            "{err:?}"
        );
    }

    #[test]
    fn token_signed_by_another_key_is_refused() {
        let der = other_private().to_pkcs1_der().unwrap();
        let other = EncodingKey::from_rsa_der(der.as_bytes());
        let token = jsonwebtoken::encode(&Header::new(ALGORITHM), &claims_now(0), &other).unwrap();
        assert!(matches!(refusal(&token), JwtError::BadSignature));
    }

    #[test]
    fn tampered_tokens_are_refused() {
        let token = keys().sign(&claims_now(0)).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let mut forged = claims_now(0);
        forged.client_id = "admin".into();
        let payload = b64url(&serde_json::to_vec(&forged).unwrap());
        let swapped = format!("{}.{payload}.{}", parts[0], parts[2]);
        assert!(matches!(refusal(&swapped), JwtError::BadSignature));

        // The first character is all signature bits; the last one also
        // holds padding bits that a decoder may ignore.
        let mut sig = parts[2].to_string();
        let first = if sig.starts_with('A') { "B" } else { "A" };
        sig.replace_range(..1, first);
        let flipped = format!("{}.{}.{sig}", parts[0], parts[1]);
        assert!(matches!(refusal(&flipped), JwtError::BadSignature));

        assert!(matches!(refusal("a.b"), JwtError::Malformed));
        assert!(matches!(refusal(""), JwtError::Malformed));
    }

    #[test]
    fn alg_none_is_refused() {
        let claims = b64url(&serde_json::to_vec(&claims_now(0)).unwrap());
        for alg in ["none", "None", "NONE"] {
            let header = b64url(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#).as_bytes());
            let token = format!("{header}.{claims}.");
            let err = refusal(&token);
            assert!(
                matches!(err, JwtError::WrongAlgorithm | JwtError::Malformed),
                "{err:?}"
            );
        }
    }

    #[test]
    fn hs256_signed_with_the_public_key_is_refused() {
        let pem = keys().public_key_pem();
        for secret in [pem.as_bytes(), pem.trim_end().as_bytes()] {
            let token = jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &claims_now(0),
                &EncodingKey::from_secret(secret),
            )
            .unwrap();
            assert!(matches!(refusal(&token), JwtError::WrongAlgorithm));
        }
    }

    #[test]
    fn other_rsa_algorithms_with_our_key_are_refused() {
        for alg in [Algorithm::RS512, Algorithm::PS256] {
            let token =
                jsonwebtoken::encode(&Header::new(alg), &claims_now(0), &keys().encoding).unwrap();
            assert!(matches!(refusal(&token), JwtError::WrongAlgorithm));
        }
    }

    #[test]
    fn debug_output_shows_no_token_or_key() {
        let issued = keys().issue(keys().public_key_pem(), None).unwrap();
        let shown = format!("{issued:?} {:?}", keys());
        assert!(!shown.contains(&issued.token), "{shown}");
        assert!(!shown.contains("PRIVATE"), "{shown}");
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn generated_key_is_private_pkcs1_and_reloads() {
        assert_eq!(ours().mode, 0o600);
        assert!(ours().pem.starts_with("-----BEGIN RSA PRIVATE KEY-----\n"));
        let dir = temp_dir();
        let path = our_key_file(&dir, "jwt.key", 0o600);
        let (again, origin) = JwtKeys::load_or_generate(&path, LIFETIME).unwrap();
        assert_eq!(origin, KeyOrigin::Loaded);
        assert_eq!(again.public_key_pem(), keys().public_key_pem());
        // A token from one instance verifies in the other.
        let issued = again.issue(keys().public_key_pem(), None).unwrap();
        assert!(keys().verify(&issued.token).is_ok());
    }

    #[test]
    fn pkcs8_key_with_crlf_loads() {
        let dir = temp_dir();
        let path = dir.path().join("pkcs8.key");
        let pem = other_private().to_pkcs8_pem(LineEnding::CRLF).unwrap();
        fs::write(&path, pem.as_bytes()).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let (loaded, origin) = JwtKeys::load_or_generate(&path, LIFETIME).unwrap();
        assert_eq!(origin, KeyOrigin::Loaded);
        assert_eq!(loaded.public, other_private().to_public_key());
    }

    #[test]
    fn key_readable_by_others_is_refused() {
        let dir = temp_dir();
        let path = our_key_file(&dir, "open.key", 0o644);
        let err = JwtKeys::load_or_generate(&path, LIFETIME).unwrap_err();
        assert!(
            matches!(err, JwtError::KeyTooOpen { mode: 0o644, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains(&path.display().to_string()));
        assert!(!err.is_client_error());
    }

    #[test]
    fn garbage_key_file_is_refused_not_replaced() {
        let dir = temp_dir();
        let path = dir.path().join("garbage.key");
        fs::write(&path, "not a key\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let err = JwtKeys::load_or_generate(&path, LIFETIME).unwrap_err();
        assert!(matches!(err, JwtError::KeyNotRsaPem { .. }), "{err:?}");
        assert!(err.to_string().contains("garbage.key"));
        assert_eq!(fs::read_to_string(&path).unwrap(), "not a key\n");
    }

    #[test]
    fn missing_directory_is_a_clear_error() {
        let dir = temp_dir();
        let path = dir.path().join("absent").join("jwt.key");
        let err = JwtKeys::load_or_generate(&path, LIFETIME).unwrap_err();
        assert!(matches!(err, JwtError::CreateKey { .. }), "{err:?}");
        assert!(err.to_string().contains(&path.display().to_string()));
    }

    #[test]
    fn dangling_symlink_is_not_written_through() {
        let dir = temp_dir();
        let target = dir.path().join("elsewhere.key");
        let link = dir.path().join("jwt.key");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = JwtKeys::load_or_generate(&link, LIFETIME).unwrap_err();
        assert!(matches!(err, JwtError::ReadKey { .. }), "{err:?}");
        assert!(err.to_string().contains("jwt.key"));
        assert!(!target.exists());
    }

    #[test]
    fn directory_in_place_of_the_key_is_refused() {
        let dir = temp_dir();
        let err = JwtKeys::load_or_generate(dir.path(), LIFETIME).unwrap_err();
        assert!(matches!(err, JwtError::KeyNotAFile { .. }), "{err:?}");
    }
}
