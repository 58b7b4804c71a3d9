//! systemd's notify protocol (`Type=notify`): the server reports READY=1 once it answers,
//! STOPPING=1 when SIGTERM arrives, and WATCHDOG=1 pings when `WATCHDOG_USEC` asks for them.
//! The test plays systemd: it binds the datagram socket that `NOTIFY_SOCKET` names.

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use common::{Backend, Server};

/// The fake service manager's socket, in a directory that lives as long as it does.
struct NotifySocket {
    socket: UnixDatagram,
    path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl NotifySocket {
    fn bind() -> NotifySocket {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        NotifySocket {
            socket,
            path,
            _dir: dir,
        }
    }

    fn path(&self) -> &str {
        self.path.to_str().expect("utf-8 path")
    }

    /// The next message, or `None` when nothing arrives within `timeout`.
    fn recv(&self, timeout: Duration) -> Option<String> {
        self.socket
            .set_read_timeout(Some(timeout))
            .expect("set timeout");
        let mut buf = [0u8; 4096];
        match self.socket.recv(&mut buf) {
            Ok(n) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                None
            }
            Err(e) => panic!("recv on the notify socket: {e}"),
        }
    }

    /// Messages until one has the line `line`; panics after `timeout`. Returns every
    /// message seen, the matching one last.
    fn wait_for(&self, line: &str, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Some(message) = self.recv(left) else {
                break;
            };
            let found = message.lines().any(|l| l == line);
            seen.push(message);
            if found {
                return seen;
            }
        }
        panic!("no {line} on the notify socket within {timeout:?}; got {seen:?}");
    }
}

fn lines(messages: &[String]) -> Vec<&str> {
    messages.iter().flat_map(|m| m.lines()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_once_serving_and_stopping_on_sigterm() {
    let notify = NotifySocket::bind();
    let mut server = Server::builder(Backend::Embedded)
        .env("NOTIFY_SOCKET", notify.path())
        .start();

    let messages = notify.wait_for("READY=1", Duration::from_secs(10));
    // READY=1 is the first thing said, and it comes with a status naming the address.
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(
        messages[0].contains(&format!("STATUS=listening on {}", server.addr)),
        "{messages:?}"
    );
    // Ready means serving: the listener and the admin socket are bound.
    let r = server
        .http
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(server.data_dir.join("admin.sock").exists());

    // Without WATCHDOG_USEC there are no watchdog pings.
    assert_eq!(notify.recv(Duration::from_millis(300)), None);

    let status = server.stop();
    assert!(status.success(), "gatehouse exited with {status}");
    let messages = notify.wait_for("STOPPING=1", Duration::from_secs(1));
    assert!(
        !lines(&messages).contains(&"READY=1"),
        "READY=1 sent twice: {messages:?}"
    );
    assert!(
        lines(&messages)
            .iter()
            .any(|l| l.starts_with("STATUS=shutting down")),
        "{messages:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchdog_pings_at_half_the_interval() {
    let notify = NotifySocket::bind();
    let mut server = Server::builder(Backend::Embedded)
        .env("NOTIFY_SOCKET", notify.path())
        .env("WATCHDOG_USEC", "200000")
        .start();
    notify.wait_for("READY=1", Duration::from_secs(10));

    // 200 ms asked for: a ping about every 100 ms, so several within a second.
    let started = Instant::now();
    let mut pings = 0;
    while started.elapsed() < Duration::from_secs(1) {
        if let Some(message) = notify.recv(Duration::from_millis(500)) {
            assert_eq!(message.trim_end(), "WATCHDOG=1");
            pings += 1;
        }
    }
    assert!((3..=15).contains(&pings), "{pings} pings in a second");

    let status = server.stop();
    assert!(status.success(), "gatehouse exited with {status}");
    notify.wait_for("STOPPING=1", Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchdog_for_another_pid_is_ignored() {
    // systemd sets WATCHDOG_PID to the main process; a child that inherits the variables
    // must not ping on its behalf.
    let notify = NotifySocket::bind();
    let mut server = Server::builder(Backend::Embedded)
        .env("NOTIFY_SOCKET", notify.path())
        .env("WATCHDOG_USEC", "100000")
        .env("WATCHDOG_PID", "1")
        .start();
    notify.wait_for("READY=1", Duration::from_secs(10));
    assert_eq!(notify.recv(Duration::from_millis(300)), None);
    assert!(server.stop().success());
}
