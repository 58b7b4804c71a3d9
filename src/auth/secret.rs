//! The HS256 signing secret: `JWT_SECRET` from the environment, or a random 256-bit secret
//! generated once into `<data_dir>/jwt_secret` (mode 0600) and reused on later starts.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Shortest secret accepted: HS256 wants at least the hash's 256 bits.
pub const MIN_SECRET_LEN: usize = 32;
const FILE_NAME: &str = "jwt_secret";

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("JWT_SECRET is {0} bytes long; it must be at least {MIN_SECRET_LEN} bytes")]
    TooShort(usize),
    #[error(
        "the secret file {path} is {len} bytes long; it must be at least {MIN_SECRET_LEN} bytes"
    )]
    FileTooShort { path: PathBuf, len: usize },
    #[error("cannot read or write the secret file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot gather randomness: {0}")]
    Random(String),
}

/// Where the secret came from, for the start-up log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretSource {
    Environment,
    File,
    Generated,
}

/// Loads the secret: `env_secret` (the value of `JWT_SECRET`) wins; otherwise the file in
/// `data_dir`, created on first use.
pub fn load(
    env_secret: Option<String>,
    data_dir: &Path,
) -> Result<(Vec<u8>, SecretSource), SecretError> {
    if let Some(secret) = env_secret {
        let bytes = secret.into_bytes();
        if bytes.len() < MIN_SECRET_LEN {
            return Err(SecretError::TooShort(bytes.len()));
        }
        return Ok((bytes, SecretSource::Environment));
    }
    let path = data_dir.join(FILE_NAME);
    let io = |source| SecretError::Io {
        path: path.clone(),
        source,
    };
    match std::fs::read(&path) {
        Ok(bytes) => {
            let bytes = trim_newline(bytes);
            if bytes.len() < MIN_SECRET_LEN {
                return Err(SecretError::FileTooShort {
                    path,
                    len: bytes.len(),
                });
            }
            Ok((bytes, SecretSource::File))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut raw = [0u8; 32];
            getrandom::fill(&mut raw).map_err(|e| SecretError::Random(e.to_string()))?;
            let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&path).map_err(io)?;
            file.write_all(hex.as_bytes()).map_err(io)?;
            file.sync_all().map_err(io)?;
            Ok((hex.into_bytes(), SecretSource::Generated))
        }
        Err(e) => Err(io(e)),
    }
}

fn trim_newline(mut bytes: Vec<u8>) -> Vec<u8> {
    while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        bytes.pop();
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let (first, source) = load(None, dir.path()).unwrap();
        assert_eq!(source, SecretSource::Generated);
        assert_eq!(first.len(), 64);
        let (second, source) = load(None, dir.path()).unwrap();
        assert_eq!(source, SecretSource::File);
        assert_eq!(first, second);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(FILE_NAME))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn short_env_secret_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            load(Some("short".into()), dir.path()),
            Err(SecretError::TooShort(5))
        ));
    }
}
