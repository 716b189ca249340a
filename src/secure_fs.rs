//! Files the agent trusts: its state directory, the token and key files, and
//! atomic creation and replacement of the files it writes there.
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

/// A new temporary file in `dir` holding `body`, synced: an unpredictable
/// name (created with O_EXCL, so a planted file or symlink cannot be reused),
/// mode [`FILE_MODE`]. Dropped (and so removed) on any error.
fn synced_temp(dir: &Path, name: &str, body: &[u8]) -> std::io::Result<tempfile::NamedTempFile> {
    let mut tmp = tempfile::Builder::new()
        .prefix(&temp_prefix(name))
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(FILE_MODE))
        .tempfile_in(dir)?;
    tmp.write_all(body)?;
    tmp.as_file().sync_all()?;
    Ok(tmp)
}

/// Replace `dir/name` with `body` atomically: a synced temporary file renamed
/// over the old one, then the directory synced. A crash at any point leaves
/// the old or the new file, never a torn one. The directory is opened first:
/// with descriptors running out (EMFILE) the call then fails before the
/// rename, and an error always means the old file is still in place (a
/// failure of the directory's own fsync after the rename excepted: that is
/// the disk failing).
pub fn replace_atomically(dir: &Path, name: &str, body: &[u8]) -> std::io::Result<()> {
    let dir_handle = File::open(dir)?;
    let tmp = synced_temp(dir, name, body)?;
    tmp.persist(dir.join(name)).map_err(|e| e.error)?;
    dir_handle.sync_all()
}

/// Create `dir/name` holding `body`, unless it exists (an error of kind
/// `AlreadyExists`, the file untouched): the name appears with the whole body
/// or not at all, so a crash or a full disk never leaves an empty or partial
/// secret that the next start would refuse, and a process that loses a race
/// to create it reads the winner's whole file.
fn create_atomically(dir: &Path, name: &str, body: &[u8]) -> std::io::Result<()> {
    let dir_handle = File::open(dir)?;
    let tmp = synced_temp(dir, name, body)?;
    tmp.persist_noclobber(dir.join(name)).map_err(|e| e.error)?;
    dir_handle.sync_all()
}

/// [`create_atomically`] at `path` (a bare file name is in the current
/// directory), after removing the temporary files a crash left for its name.
pub fn create_file_atomically(path: &Path, body: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the path has no file name",
            )
        })?
        .to_string_lossy();
    remove_stale_temps(dir, &name);
    create_atomically(dir, &name, body)
}

/// Move `dir/name` aside to `dir/name.rejected-STAMP` (UTC) and return the new
/// path: a file the agent cannot use is kept for a person to look at, rather
/// than overwritten by the next save.
pub fn set_aside(dir: &Path, name: &str) -> std::io::Result<PathBuf> {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
    let aside = dir.join(format!("{name}.rejected-{stamp}"));
    let dir_handle = File::open(dir)?;
    std::fs::rename(dir.join(name), &aside)?;
    dir_handle.sync_all()?;
    Ok(aside)
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
    fn atomic_create_never_replaces_and_leaves_nothing_on_failure() {
        let t = temp_dir();
        create_atomically(t.path(), "token", b"first").unwrap();
        let file = t.path().join("token");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "first");
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            FILE_MODE
        );
        let e = create_atomically(t.path(), "token", b"second").unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists, "{e}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "first");
        // A planted symlink at the name is not followed or replaced.
        let victim = t.path().join("victim");
        std::fs::write(&victim, "untouched").unwrap();
        std::os::unix::fs::symlink(&victim, t.path().join("key")).unwrap();
        assert!(create_atomically(t.path(), "key", b"secret").is_err());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
        // No temporary file is left behind by any of it.
        assert_eq!(remove_stale_temps(t.path(), "token"), 0);
        assert_eq!(remove_stale_temps(t.path(), "key"), 0);
    }

    #[test]
    fn a_file_set_aside_keeps_its_bytes_and_frees_its_name() {
        let t = temp_dir();
        std::fs::write(t.path().join("state.json"), "{ torn").unwrap();
        let aside = set_aside(t.path(), "state.json").unwrap();
        assert_eq!(aside.parent(), Some(t.path()));
        let aside_name = aside.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            aside_name.starts_with("state.json.rejected-"),
            "{aside_name}"
        );
        assert_eq!(std::fs::read_to_string(&aside).unwrap(), "{ torn");
        assert!(!t.path().join("state.json").exists());
        assert!(
            set_aside(t.path(), "state.json").is_err(),
            "nothing left to move"
        );
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
