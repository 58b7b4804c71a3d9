//! Where the HS256 signing secrets come from, first match wins:
//!
//! 1. `JWT_SECRET`: the secret itself;
//! 2. `JWT_SECRET_FILE`: a file holding it;
//! 3. `$CREDENTIALS_DIRECTORY/jwt_secret`: a systemd credential (`LoadCredential=`);
//! 4. `<data_dir>/jwt_secret`, generated once (256 random bits, mode 0600) when absent.
//!
//! A secret file may hold several secrets, one per line: the first signs, every one verifies.
//! That is how the secret is rotated without logging anyone out: put the new secret on the
//! first line, keep the old one below it for an access-token lifetime, then remove it.

use std::path::{Path, PathBuf};

/// Shortest secret accepted: HS256 wants at least the hash's 256 bits.
pub const MIN_SECRET_LEN: usize = 32;
const FILE_NAME: &str = "jwt_secret";

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("JWT_SECRET is {0} bytes long; it must be at least {MIN_SECRET_LEN} bytes")]
    TooShort(usize),
    #[error(
        "line {line} of the secret file {path} is {len} bytes long; each secret must be at least {MIN_SECRET_LEN} bytes"
    )]
    FileTooShort {
        path: PathBuf,
        line: usize,
        len: usize,
    },
    #[error("the secret file {0} holds no secret")]
    Empty(PathBuf),
    #[error("cannot read or write the secret file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot gather randomness: {0}")]
    Random(String),
}

/// Where the secrets came from, for the start-up log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    Environment,
    File(PathBuf),
    Generated(PathBuf),
}

/// The settings that name the secret, as found in the environment.
#[derive(Debug, Clone, Default)]
pub struct SecretInputs {
    /// `JWT_SECRET`
    pub secret: Option<String>,
    /// `JWT_SECRET_FILE`
    pub file: Option<PathBuf>,
    /// `CREDENTIALS_DIRECTORY` (set by systemd for `LoadCredential=`)
    pub credentials_dir: Option<PathBuf>,
}

impl SecretInputs {
    pub fn from_env() -> Self {
        let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
        SecretInputs {
            secret: var("JWT_SECRET").map(|v| v.to_string_lossy().into_owned()),
            file: var("JWT_SECRET_FILE").map(PathBuf::from),
            credentials_dir: var("CREDENTIALS_DIRECTORY").map(PathBuf::from),
        }
    }

    /// Whether the secret is configured (as opposed to generated per data dir).
    pub fn is_configured(&self) -> bool {
        self.secret.is_some() || self.file.is_some() || self.credential().is_some()
    }

    fn credential(&self) -> Option<PathBuf> {
        let path = self.credentials_dir.as_ref()?.join(FILE_NAME);
        path.is_file().then_some(path)
    }
}

/// Loads the secrets; the first one signs.
pub fn load(
    inputs: &SecretInputs,
    data_dir: &Path,
) -> Result<(Vec<Vec<u8>>, SecretSource), SecretError> {
    if let Some(secret) = &inputs.secret {
        let bytes = secret.as_bytes().to_vec();
        if bytes.len() < MIN_SECRET_LEN {
            return Err(SecretError::TooShort(bytes.len()));
        }
        return Ok((vec![bytes], SecretSource::Environment));
    }
    if let Some(path) = inputs.file.clone().or_else(|| inputs.credential()) {
        let secrets = read_file(&path)?;
        return Ok((secrets, SecretSource::File(path)));
    }
    let path = data_dir.join(FILE_NAME);
    match read_file(&path) {
        Ok(secrets) => Ok((secrets, SecretSource::File(path))),
        Err(SecretError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            let secret = generate(&path)?;
            Ok((vec![secret], SecretSource::Generated(path)))
        }
        Err(e) => Err(e),
    }
}

/// One secret per non-empty line.
fn read_file(path: &Path) -> Result<Vec<Vec<u8>>, SecretError> {
    let bytes = std::fs::read(path).map_err(|source| SecretError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut secrets = Vec::new();
    for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        if line.len() < MIN_SECRET_LEN {
            return Err(SecretError::FileTooShort {
                path: path.to_owned(),
                line: i + 1,
                len: line.len(),
            });
        }
        secrets.push(line.to_vec());
    }
    if secrets.is_empty() {
        return Err(SecretError::Empty(path.to_owned()));
    }
    Ok(secrets)
}

/// Writes 256 random bits, hex-encoded, to a new file readable by its owner only.
fn generate(path: &Path) -> Result<Vec<u8>, SecretError> {
    let io = |source| SecretError::Io {
        path: path.to_owned(),
        source,
    };
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| SecretError::Random(e.to_string()))?;
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    crate::files::write_private(path, hex.as_bytes()).map_err(io)?;
    Ok(hex.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let none = SecretInputs::default();
        let (first, source) = load(&none, dir.path()).unwrap();
        assert!(matches!(source, SecretSource::Generated(_)));
        assert_eq!(first[0].len(), 64);
        let (second, source) = load(&none, dir.path()).unwrap();
        assert!(matches!(source, SecretSource::File(_)));
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
        let inputs = SecretInputs {
            secret: Some("short".into()),
            ..Default::default()
        };
        assert!(matches!(
            load(&inputs, dir.path()),
            Err(SecretError::TooShort(5))
        ));
    }

    #[test]
    fn files_and_credentials_hold_rotations() {
        let dir = tempfile::tempdir().unwrap();
        let new = "n".repeat(40);
        let old = "o".repeat(40);
        let file = dir.path().join("secrets");
        std::fs::write(&file, format!("{new}\r\n\n{old}\n")).unwrap();
        let inputs = SecretInputs {
            file: Some(file.clone()),
            ..Default::default()
        };
        let (secrets, _) = load(&inputs, dir.path()).unwrap();
        assert_eq!(secrets, vec![new.clone().into_bytes(), old.into_bytes()]);

        let creds = tempfile::tempdir().unwrap();
        std::fs::write(creds.path().join(FILE_NAME), &new).unwrap();
        let inputs = SecretInputs {
            credentials_dir: Some(creds.path().to_owned()),
            ..Default::default()
        };
        assert_eq!(load(&inputs, dir.path()).unwrap().0, vec![new.into_bytes()]);

        std::fs::write(&file, "too short\n").unwrap();
        let inputs = SecretInputs {
            file: Some(file),
            ..Default::default()
        };
        assert!(matches!(
            load(&inputs, dir.path()),
            Err(SecretError::FileTooShort { line: 1, .. })
        ));
    }
}
