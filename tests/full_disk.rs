//! A full disk: writes fail with 507 problem+json, reads and token checks keep working,
//! nothing is half-written, and writes work again once space returns, without a restart.
//! Needs root to mount a small tmpfs; with CI=true it fails without, elsewhere it skips loudly.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::Value;

struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap().keep();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("cannot mount a tmpfs (CI runs as root and must be able to)");
            }
            eprintln!("SKIPPED: cannot mount a tmpfs (not root?); the full-disk test did not run");
            return None;
        }
        Some(Tmpfs(dir))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        for _ in 0..50 {
            if Command::new("umount")
                .arg(&self.0)
                .status()
                .is_ok_and(|s| s.success())
            {
                let _ = std::fs::remove_dir(&self.0);
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

/// Fills the filesystem with a file; returns its path.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while f.write_all(&chunk).is_ok() {}
    let _ = f.sync_all();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_keeps_reads_and_recovers() {
    let Some(fs) = Tmpfs::mount("8m") else { return };
    let mut server = Server::builder(Backend::Embedded)
        .data_dir(&fs.path().join("data"))
        .start();
    let user = email("full");
    let t = server.signup(&user).await;

    let filler = fill(fs.path());
    let late = email("late");
    let problem = assert_problem(server.register(&late, PASSWORD).await, 507).await;
    assert!(problem["detail"].as_str().unwrap().contains("space"));
    // Reads and token checks keep working.
    assert_eq!(server.me_status(&t.access).await, 200);
    assert_eq!(
        server
            .http
            .get(server.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // Writes that need the disk are refused cleanly, never a 500.
    let r = server.login(&user, PASSWORD).await;
    assert_eq!(r.status(), 507);
    let r = server.post_auth("/auth/logout", &t.access).await;
    assert_eq!(r.status(), 507);
    assert_eq!(
        server.me_status(&t.access).await,
        200,
        "a refused logout changed nothing"
    );

    // Space returns: writes work again without a restart; nothing was half-written.
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(
        server.register(&email("after"), PASSWORD).await.status(),
        201
    );
    assert_eq!(
        server.login(&late, PASSWORD).await.status(),
        401,
        "the refused registration left nothing"
    );
    let r = server.login(&user, PASSWORD).await;
    assert_eq!(r.status(), 200);
    let fresh = Tokens::from(r.json::<Value>().await.unwrap());
    assert_eq!(
        server.post_auth("/auth/logout", &t.access).await.status(),
        204
    );
    assert_eq!(server.me_status(&t.access).await, 401);
    assert_eq!(server.me_status(&fresh.access).await, 200);

    // And the database is intact across a restart.
    server.stop();
    let server = Server::builder(Backend::Embedded)
        .data_dir(&fs.path().join("data"))
        .start();
    assert_eq!(server.me_status(&fresh.access).await, 200);
    assert_eq!(server.me_status(&t.access).await, 401);
    drop(server);
}
