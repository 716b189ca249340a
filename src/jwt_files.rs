//! The JWT key files at start: the private key loaded (or generated, 0600),
//! and its public half written where Gthulhu's `public_key_path` can point.
//!
//! The public key file is a credential: whoever reads it can get a token
//! that writes. So it is written with mode 0600, as readable as the static
//! token file and no more; Gthulhu's scheduler runs as root and reads it
//! anyway. An operator who widens the mode of an existing file is warned,
//! and the file is left as it is.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::jwt::{JwtKeys, KeyOrigin};
use crate::secure_fs;

/// The mode the public key file is written with.
pub const PUBLIC_KEY_MODE: u32 = secure_fs::FILE_MODE;

/// Load or generate the signing key at `private`, and make sure `public`
/// holds its public half. Logs where both are; never a token.
pub fn load(private: &Path, public: &Path, token_lifetime: Duration) -> Result<Arc<JwtKeys>> {
    for dir in [private.parent(), public.parent()].into_iter().flatten() {
        if !dir.as_os_str().is_empty() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .with_context(|| format!("creating the JWT key directory {}", dir.display()))?;
        }
    }
    let (keys, origin) = JwtKeys::load_or_generate(private, token_lifetime)?;
    let action = match origin {
        KeyOrigin::Generated => "generated now, mode 0600",
        KeyOrigin::Loaded => "loaded",
    };
    log::info!(
        "JWT signing key {} ({action}); tokens last {} h",
        private.display(),
        token_lifetime.as_secs() / 3600
    );
    write_public(public, keys.public_key_pem())?;
    Ok(Arc::new(keys))
}

/// Write `pem` to `path` unless it holds it already; replaced atomically, so
/// a client never reads half a key.
fn write_public(path: &Path, pem: &str) -> Result<()> {
    if let Ok(existing) = fs::read_to_string(path) {
        if existing == pem {
            let mode = fs::metadata(path).map(|m| m.mode() & 0o777).unwrap_or(0);
            if mode & 0o077 != 0 {
                log::warn!(
                    "the JWT public key {} has mode {mode:04o}: every user who can read it can \
                     get a token that writes",
                    path.display()
                );
            }
            log::info!(
                "Gthulhu's clients get tokens with the public key {} (public_key_path)",
                path.display()
            );
            return Ok(());
        }
    }
    let name = path.file_name().and_then(|n| n.to_str()).with_context(|| {
        format!(
            "the JWT public key path {} names no UTF-8 file",
            path.display()
        )
    })?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // A killed agent's temporary file has a random name: no later write reuses it.
    secure_fs::remove_stale_temps(dir, name);
    secure_fs::replace_atomically(dir, name, pem.as_bytes())
        .with_context(|| format!("writing the JWT public key {}", path.display()))?;
    log::info!(
        "Gthulhu's clients get tokens with the public key {} (written now, mode {PUBLIC_KEY_MODE:04o})",
        path.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_public_half_0600_and_keeps_it() {
        let dir = std::env::temp_dir().join(format!("scx_pilot-jwtfiles-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let private = dir.join("jwt_private.pem");
        let public = dir.join("jwt_public.pem");
        let keys = load(&private, &public, Duration::from_secs(3600)).unwrap();
        assert_eq!(fs::read_to_string(&public).unwrap(), keys.public_key_pem());
        assert_eq!(
            fs::metadata(&public).unwrap().mode() & 0o777,
            PUBLIC_KEY_MODE
        );
        assert_eq!(fs::metadata(&private).unwrap().mode() & 0o777, 0o600);
        let again = load(&private, &public, Duration::from_secs(3600)).unwrap();
        assert_eq!(again.public_key_pem(), keys.public_key_pem());
        fs::write(&public, "stale").unwrap();
        load(&private, &public, Duration::from_secs(3600)).unwrap();
        assert_eq!(fs::read_to_string(&public).unwrap(), keys.public_key_pem());
        fs::remove_dir_all(&dir).unwrap();
    }
}
