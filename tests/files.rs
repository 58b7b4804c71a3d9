//! Files that hold secrets are private from their first byte: the data dir, the database,
//! generated secrets and keys, the admin socket and backups, checked under `umask 000` (so
//! nothing is private by accident of the umask), and a data dir left open is tightened or
//! refused. Backups hold no usable token.
#![cfg(unix)]

mod common;

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;

backend_tests!(
    data_dir_secret_and_socket_are_private,
    generated_keys_are_private,
    an_open_data_dir_is_made_private,
);

/// Every file the tests' servers create would be world-readable unless created private.
// std has no umask.
#[allow(unsafe_code)]
fn open_umask() {
    // SAFETY: umask only sets the process's file mode creation mask.
    unsafe {
        libc::umask(0);
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

fn gatehouse(args: &[&str], data_dir: &Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(args)
        .env("GATEHOUSE_DATA_DIR", data_dir)
        .env("GATEHOUSE_ARGON2__MEMORY_KIB", "256")
        .env("GATEHOUSE_ARGON2__ITERATIONS", "1")
        .output()
        .expect("run gatehouse")
}

async fn data_dir_secret_and_socket_are_private(backend: Backend) {
    open_umask();
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let (stop, watcher) = watch(data.clone());
    let server = Server::builder(backend.clone()).data_dir(&data).start();
    stop.store(true, Ordering::Relaxed);
    // From the moment each appeared: the secret, the database, the socket (or the private
    // directory it is bound in).
    for (name, mode) in watcher.join().unwrap() {
        assert_eq!(mode & 0o077, 0, "{name} was seen with mode {mode:o}");
    }
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("jwt_secret")), 0o600);
    let socket = data.join("admin.sock");
    assert!(
        std::fs::symlink_metadata(&socket)
            .unwrap()
            .file_type()
            .is_socket()
    );
    assert_eq!(mode(&socket), 0o600);
    if matches!(backend, Backend::Embedded) {
        assert_eq!(mode(&data.join("gatehouse.redb")), 0o600);
    }
    // Nothing else was left in the data dir (the socket's staging directory is gone).
    let mut names: Vec<String> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let expected: &[&str] = match backend {
        Backend::Embedded => &["admin.sock", "gatehouse.redb", "jwt_secret", "mfa_key"],
        Backend::Redis(_) => &["admin.sock", "jwt_secret", "mfa_key"],
    };
    assert_eq!(names, expected);
    // The key that seals TOTP secrets is private too.
    assert_eq!(mode(&data.join("mfa_key")), 0o600);
    drop(server);
}

async fn generated_keys_are_private(backend: Backend) {
    open_umask();
    for (algorithm, file) in [
        ("EdDSA", "signing_key_ed25519.pem"),
        ("ES256", "signing_key_p256.pem"),
    ] {
        let server = Server::builder(backend.clone())
            .env("GATEHOUSE_TOKENS__ALGORITHM", algorithm)
            .start();
        assert_eq!(mode(&server.data_dir.join(file)), 0o600, "{algorithm}");
    }
}

/// A data dir and secret left open (by hand, or an older version) are narrowed at start.
async fn an_open_data_dir_is_made_private(backend: Backend) {
    open_umask();
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let secret = data.join("jwt_secret");
    std::fs::write(&secret, "ab".repeat(32)).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let server = Server::builder(backend).data_dir(&data).start();
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&secret), 0o600);
    assert!(
        server
            .logs()
            .contains("made a file in the data dir private"),
        "{}",
        server.logs()
    );
    // It still signs with that secret.
    let t = server.signup(&email("ada")).await;
    assert_eq!(server.me_status(&t.access).await, 200);
}

/// A data dir that gatehouse cannot make private (it belongs to someone else) refuses to
/// start, with a message that says why. Needs root, to run gatehouse as another user.
#[test]
// std has no geteuid.
#[allow(unsafe_code)]
fn an_open_data_dir_that_cannot_be_made_private_is_refused() {
    open_umask();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0
        || std::process::Command::new("setpriv")
            .arg("--version")
            .output()
            .is_err()
    {
        eprintln!("SKIPPED: needs root and setpriv to run gatehouse as another user");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = root.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(std::fs::metadata(&data).unwrap().uid(), 0);
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["user", "list"])
        .env_clear()
        .env("GATEHOUSE_DATA_DIR", &data)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("is open to other users (mode 755) and cannot be made private"),
        "{stderr}"
    );
    assert_eq!(mode(&data), 0o755, "left as it was");
}

/// Records the modes of every file that appears in `dir` while the returned flag is unset,
/// polling as fast as it can: a file created loose and narrowed afterwards is likely caught.
fn watch(dir: PathBuf) -> (Arc<AtomicBool>, std::thread::JoinHandle<Vec<(String, u32)>>) {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let handle = std::thread::spawn(move || {
        let mut seen = Vec::new();
        while !flag.load(Ordering::Relaxed) {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                if let Ok(meta) = entry.metadata() {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    seen.push((name, meta.permissions().mode() & 0o7777));
                }
            }
        }
        seen
    });
    (stop, handle)
}

/// Backups, taken through the running server or directly, and restores: 0600 from the
/// first byte, and without the plaintext refresh tokens of the reuse grace window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_are_private_and_hold_no_token() {
    open_umask();
    let mut server = Server::builder(Backend::Embedded)
        .env("GATEHOUSE_TOKENS__REFRESH_REUSE_GRACE", "600")
        .start();
    let ada = email("ada");
    let first = server.signup(&ada).await;
    // A rotation: the store keeps the successor for the grace window.
    let r = server.refresh(&first.refresh).await;
    assert_eq!(r.status(), 200);
    let second = Tokens::from(r.json::<serde_json::Value>().await.unwrap());
    let secret = |token: &str| token.split_once('.').unwrap().1.to_owned();

    let out_dir = tempfile::tempdir().unwrap();
    let check = |file: &Path| {
        assert_eq!(mode(file), 0o600, "{}", file.display());
        let bytes = std::fs::read(file).unwrap();
        for token in [&first.refresh, &second.refresh] {
            let secret = secret(token);
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{} holds a refresh token",
                file.display()
            );
        }
    };

    // Through the running server.
    let live = out_dir.path().join("live.redb");
    let (stop, watcher) = watch(out_dir.path().to_owned());
    let out = gatehouse(&["backup", live.to_str().unwrap()], &server.data_dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stop.store(true, Ordering::Relaxed);
    check(&live);
    server.stop();

    // Directly, the server stopped.
    let direct = out_dir.path().join("direct.redb");
    let (stop2, watcher2) = watch(out_dir.path().to_owned());
    let out = gatehouse(&["backup", direct.to_str().unwrap()], &server.data_dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stop2.store(true, Ordering::Relaxed);
    check(&direct);
    for (name, mode) in watcher
        .join()
        .unwrap()
        .into_iter()
        .chain(watcher2.join().unwrap())
    {
        assert_eq!(mode, 0o600, "{name} was seen with mode {mode:o}");
    }

    // A restore, with its sessions, is private too, and its sessions work without the grace
    // records: the current refresh token rotates.
    let fresh = tempfile::tempdir().unwrap();
    let out = gatehouse(
        &["restore", "--keep-sessions", direct.to_str().unwrap()],
        fresh.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(mode(&fresh.path().join("gatehouse.redb")), 0o600);
    std::fs::copy(
        server.data_dir.join("jwt_secret"),
        fresh.path().join("jwt_secret"),
    )
    .unwrap();
    let restored = Server::builder(Backend::Embedded)
        .data_dir(fresh.path())
        .start();
    assert_eq!(restored.me_status(&second.access).await, 200);
    assert_eq!(restored.refresh(&second.refresh).await.status(), 200);
}
