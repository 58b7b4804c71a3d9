//! Files that hold secrets, private from their first byte.
//!
//! The data dir (mode 0700) holds the database (password hashes, sessions), the generated
//! signing secret or keys, staged backups and the admin socket. Each is created with its
//! final mode rather than created and then narrowed with `chmod`: in between, another local
//! user could open it and keep the descriptor. A data dir found with group or other bits is
//! tightened at start, the files in it too, or gatehouse refuses to start.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// Creates `path` (never overwriting) readable and writable by its owner only, for a writer
/// that fills it itself (a backup).
pub(crate) fn create_private(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Creates `path` (never overwriting) readable by its owner only, writes `bytes` and syncs:
/// for generated secrets and keys.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = create_private(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Creates `dir` and its parents; a new directory gets mode 0700. An existing `dir` that
/// group or others may enter is tightened to 0700, and the files directly in it lose their
/// group and other bits (a secret or database left readable by an older version or by hand);
/// when that is not possible (the dir belongs to another user) this fails, and with it the
/// start.
pub(crate) fn private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)?;
    #[cfg(unix)]
    {
        let refuse = |what: &Path, mode: u32, e: io::Error| {
            io::Error::new(
                e.kind(),
                format!(
                    "{} is open to other users (mode {:o}) and cannot be made private: {e}; \
                     make the data dir 0700 and its files 0600, owned by the user gatehouse runs as",
                    what.display(),
                    mode & 0o7777
                ),
            )
        };
        let mode = std::fs::metadata(dir)?.permissions().mode();
        tighten(dir, mode, 0o700).map_err(|e| refuse(dir, mode, e))?;
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            // Not followed: a link's target is not ours to change.
            let meta = entry.metadata()?;
            if meta.is_file() {
                let path = entry.path();
                let mode = meta.permissions().mode();
                tighten(&path, mode, mode & 0o700).map_err(|e| refuse(&path, mode, e))?;
            }
        }
    }
    Ok(())
}

#[cfg(unix)]
use std::os::unix::fs::PermissionsExt;

/// Sets `path` to `to` if its `mode` has group or other bits.
#[cfg(unix)]
fn tighten(path: &Path, mode: u32, to: u32) -> io::Result<()> {
    if mode & 0o077 == 0 {
        return Ok(());
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(to))?;
    tracing::warn!(
        path = %path.display(),
        was = format!("{:o}", mode & 0o7777),
        now = format!("{to:o}"),
        "made a file in the data dir private: it was open to other users"
    );
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn private_from_the_first_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        // Before a byte is written, the new file already has its final mode.
        let file = create_private(&path).unwrap();
        assert_eq!(file.metadata().unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(file.metadata().unwrap().len(), 0);
        drop(file);
        // Never overwritten.
        assert_eq!(
            write_private(&path, b"x").unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        let other = dir.path().join("key");
        write_private(&other, b"key").unwrap();
        assert_eq!(mode(&other), 0o600);
        assert_eq!(std::fs::read(&other).unwrap(), b"key");
    }

    #[test]
    fn data_dirs_are_created_or_made_private() {
        let root = tempfile::tempdir().unwrap();
        let new = root.path().join("a/b/data");
        private_dir(&new).unwrap();
        assert_eq!(mode(&new), 0o700);

        let loose = root.path().join("loose");
        std::fs::create_dir(&loose).unwrap();
        std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o755)).unwrap();
        let secret = loose.join("jwt_secret");
        std::fs::write(&secret, "s").unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
        let script = loose.join("tool");
        std::fs::write(&script, "s").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let outside = root.path().join("outside");
        std::fs::write(&outside, "o").unwrap();
        std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::os::unix::fs::symlink(&outside, loose.join("link")).unwrap();
        private_dir(&loose).unwrap();
        assert_eq!(mode(&loose), 0o700);
        assert_eq!(mode(&secret), 0o600);
        assert_eq!(mode(&script), 0o700);
        assert_eq!(mode(&outside), 0o644, "a link is not followed");
    }
}
