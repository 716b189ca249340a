//! Files the agent trusts: its state directory, the token and key files, and
//! atomic replacement of the saved strategy set.
//!
//! The agent runs as root and writes into its state directory, so a directory
//! or file that another user can change (or a symlink someone planted) would
//! let that user pick the file root overwrites, or hand the agent a token of
//! their choosing. Checks are made on what was opened (`fstat` of the open
//! descriptor), never by a path looked up a second time.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Why a file or directory is not trusted. Each message names the path and the
/// fix, on one line.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("{path} is a symlink; the agent does not follow symlinks here: replace it with a real {what}")]
    Symlink { path: PathBuf, what: &'static str },
    #[error("{path} is not a {what}")]
    WrongType { path: PathBuf, what: &'static str },
    #[error("{path} is owned by uid {owner}, not by the agent's user (uid {euid}): run chown {euid} {path}")]
    Owner {
        path: PathBuf,
        owner: u32,
        euid: u32,
    },
    #[error("{path} has mode {mode:04o}: {who} may change it; run chmod {fix:o} {path}")]
    Mode {
        path: PathBuf,
        mode: u32,
        who: &'static str,
        fix: u32,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl TrustError {
    /// The file or directory is missing (not a trust problem).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

fn euid() -> u32 {
    // SAFETY: geteuid has no memory effects and cannot fail.
    unsafe { libc::geteuid() }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TrustError + '_ {
    move |source| TrustError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Owner and mode checks shared by directories and secret files.
fn check_owner_mode(
    path: &Path,
    meta: &std::fs::Metadata,
    forbidden: u32,
    who: &'static str,
    fix: u32,
) -> Result<(), TrustError> {
    let me = euid();
    if meta.uid() != me {
        return Err(TrustError::Owner {
            path: path.to_path_buf(),
            owner: meta.uid(),
            euid: me,
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode & forbidden != 0 {
        return Err(TrustError::Mode {
            path: path.to_path_buf(),
            mode,
            who,
            fix,
        });
    }
    Ok(())
}

/// Check that `dir` is a real directory (not a symlink), owned by the agent's
/// user and writable by nobody else.
pub fn check_dir(dir: &Path) -> Result<(), TrustError> {
    let meta = std::fs::symlink_metadata(dir).map_err(io(dir))?;
    if meta.file_type().is_symlink() {
        return Err(TrustError::Symlink {
            path: dir.to_path_buf(),
            what: "directory",
        });
    }
    if !meta.is_dir() {
        return Err(TrustError::WrongType {
            path: dir.to_path_buf(),
            what: "directory",
        });
    }
    check_owner_mode(dir, &meta, 0o022, "group or others", 0o700)
}

/// Create `dir` (mode 0700, parents as needed) when missing, then check it
/// as [`check_dir`] does.
pub fn ensure_dir(dir: &Path) -> Result<(), TrustError> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::symlink_metadata(dir) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io(dir))?,
        Err(e) => return Err(io(dir)(e)),
    }
    check_dir(dir)
}

/// Open a secret file for reading without following a symlink, and check on
/// the open descriptor that it is a regular file owned by the agent's user
/// that nobody else may read or write.
pub fn open_secret(path: &Path) -> Result<File, TrustError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| {
            // O_NOFOLLOW on a symlink fails with ELOOP.
            if e.raw_os_error() == Some(libc::ELOOP) {
                TrustError::Symlink {
                    path: path.to_path_buf(),
                    what: "file",
                }
            } else {
                io(path)(e)
            }
        })?;
    let meta = file.metadata().map_err(io(path))?;
    if !meta.is_file() {
        return Err(TrustError::WrongType {
            path: path.to_path_buf(),
            what: "regular file",
        });
    }
    check_owner_mode(path, &meta, 0o077, "group and others", 0o600)?;
    Ok(file)
}

/// The mode of the files [`replace_atomically`] writes: only the owner reads.
pub const FILE_MODE: u32 = 0o600;

/// The prefix of the temporary files [`replace_atomically`] makes for `name`.
fn temp_prefix(name: &str) -> String {
    format!(".{name}.tmp-")
}

/// Replace `dir/name` with `body` atomically: a new temporary file with an
/// unpredictable name (created with O_EXCL, so a planted file or symlink
/// cannot be reused), fsync, rename over the old file, fsync the directory.
/// A crash at any point leaves the old or the new file, never a torn one.
pub fn replace_atomically(dir: &Path, name: &str, body: &[u8]) -> std::io::Result<()> {
    let mut tmp = tempfile::Builder::new()
        .prefix(&temp_prefix(name))
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(FILE_MODE))
        .tempfile_in(dir)?;
    tmp.write_all(body)?;
    tmp.as_file().sync_all()?;
    tmp.persist(dir.join(name)).map_err(|e| e.error)?;
    File::open(dir)?.sync_all()
}

/// Remove temporary files of `name` that a killed agent left in `dir`.
/// Returns how many were removed.
pub fn remove_stale_temps(dir: &Path, name: &str) -> usize {
    let prefix = temp_prefix(name);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .filter(|e| std::fs::remove_file(e.path()).is_ok())
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn temp_dir() -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix("scx_pilot_secure_fs")
            .tempdir()
            .unwrap()
    }

    #[test]
    fn directories_writable_by_others_or_symlinked_are_refused() {
        let t = temp_dir();
        let dir = t.path().join("state");
        ensure_dir(&dir).unwrap();
        assert_eq!(
            std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = check_dir(&dir).unwrap_err();
        assert!(matches!(e, TrustError::Mode { .. }), "{e}");
        assert!(e.to_string().contains("chmod 700"), "{e}");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        assert!(matches!(
            check_dir(&link).unwrap_err(),
            TrustError::Symlink { .. }
        ));
    }

    #[test]
    fn secrets_are_not_read_through_symlinks_or_when_shared() {
        let t = temp_dir();
        let secret = t.path().join("secret");
        std::fs::write(&secret, "x").unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        open_secret(&secret).unwrap();
        let link = t.path().join("token");
        std::os::unix::fs::symlink(&secret, &link).unwrap();
        assert!(matches!(
            open_secret(&link).unwrap_err(),
            TrustError::Symlink { .. }
        ));
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            open_secret(&secret).unwrap_err(),
            TrustError::Mode { .. }
        ));
        assert!(open_secret(&t.path().join("missing"))
            .unwrap_err()
            .is_not_found());
    }

    #[test]
    fn atomic_replace_ignores_planted_temp_names_and_cleans_up() {
        let t = temp_dir();
        let victim = t.path().join("victim");
        std::fs::write(&victim, "untouched").unwrap();
        // A symlink where a predictable temp name would be.
        let planted = t
            .path()
            .join(format!(".state.json.tmp-{}", std::process::id()));
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        replace_atomically(t.path(), "state.json", b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
        assert_eq!(
            std::fs::read_to_string(t.path().join("state.json")).unwrap(),
            "new"
        );
        // The planted symlink counts as a stale temp file and goes.
        assert_eq!(remove_stale_temps(t.path(), "state.json"), 1);
        assert!(std::fs::symlink_metadata(&planted).is_err());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
    }
}
