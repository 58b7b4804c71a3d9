//! Passkeys in a real browser (issue #13): headless Chromium over WebDriver with Chrome's
//! virtual authenticator (DevTools `WebAuthn.addVirtualAuthenticator`: resident keys, user
//! verification), behind a real nginx whose `auth_request` guards a `two_factor` area.
//!
//! One walk: a password sign-in meets the `two_factor` rule without a factor and lands on
//! /account; a passkey is added there (its recovery codes shown once), which makes the
//! session two-factor and opens the area; after signing out, the passkey signs in alone
//! (the login page's passkey button) and then as the second step after a password; finally
//! it is removed and a password alone signs in again. All on `http://localhost:<port>`, a
//! secure context whose relying-party id is `localhost`. nginx serves gatehouse's pages and
//! API under the same host as the app, so the host-only cookies reach both.

mod common;

use std::path::Path;
use std::time::Duration;

use common::browser::{Proc, WebDriver, free_port, require};
use common::{Backend, PASSWORD, Server, email};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The upstream app: a page naming the `Remote-User` it received.
async fn upstream() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head);
                let user = head
                    .lines()
                    .filter_map(|l| l.split_once(':'))
                    .find(|(k, _)| k.trim().eq_ignore_ascii_case("remote-user"))
                    .map(|(_, v)| v.trim().to_owned())
                    .unwrap_or_default();
                let body = format!(
                    "<!doctype html><html lang=\"en\"><head><title>Vault</title></head><body><h1>Vault</h1><p id=\"user\">vault user: {}</p></body></html>",
                    user.replace(['<', '>', '&'], "")
                );
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    port
}

/// nginx on `port`: gatehouse's pages and API, and everything else behind `auth_request`.
fn nginx(binary: &Path, dir: &Path, port: u16, gatehouse: &str, upstream: u16) -> Proc {
    for sub in ["body", "proxy", "fastcgi", "uwsgi", "scgi"] {
        std::fs::create_dir_all(dir.join("tmp").join(sub)).unwrap();
    }
    let d = dir.display();
    let to_gatehouse = format!(
        "proxy_pass http://{gatehouse}; proxy_set_header Host $http_host; proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;"
    );
    let conf = format!(
        r#"
daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        location /login {{ {to_gatehouse} }}
        location /logout {{ {to_gatehouse} }}
        location /account {{ {to_gatehouse} }}
        location /auth/ {{ {to_gatehouse} }}
        location /static/ {{ {to_gatehouse} }}
        location = /internal/gatehouse {{
            internal;
            proxy_pass http://{gatehouse}/authz/auth-request;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URL $scheme://$http_host$request_uri;
            proxy_set_header X-Original-Host $host;
            proxy_set_header X-Original-Method $request_method;
        }}
        location / {{
            auth_request /internal/gatehouse;
            auth_request_set $gatehouse_user $upstream_http_remote_user;
            auth_request_set $gatehouse_redirect $upstream_http_x_redirection_url;
            error_page 401 = @gatehouse_login;
            proxy_set_header Remote-User $gatehouse_user;
            proxy_pass http://127.0.0.1:{upstream};
        }}
        location @gatehouse_login {{
            if ($gatehouse_redirect) {{
                return 302 $gatehouse_redirect;
            }}
            return 401;
        }}
    }}
}}
"#
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    let mut proc = Proc::spawn(
        "nginx",
        std::process::Command::new(binary)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&path),
        dir.join("nginx.out"),
    );
    proc.wait_for_port(port);
    proc
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passkeys_in_a_browser_behind_nginx() {
    let (Some(nginx_bin), Some(chromium), Some(driver)) = (
        require("nginx", "nginx"),
        require("chromium", "chromium"),
        require("chromedriver", "chromium-driver"),
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let site = format!("http://localhost:{port}");
    let config = dir.path().join("gatehouse.toml");
    std::fs::write(
        &config,
        format!(
            r#"public_url = "{site}"
trusted_proxies = ["127.0.0.1"]
[login]
title = "Passkey lab"
[[access_control.rules]]
domain = "localhost"
path = "/vault"
policy = "two_factor"
"#
        ),
    )
    .unwrap();
    let server = Server::builder(Backend::Embedded)
        .env("GATEHOUSE_CONFIG", &config.display().to_string())
        .start();
    let ada = email("ada");
    assert_eq!(server.register(&ada, PASSWORD).await.status(), 201);
    let upstream = upstream().await;
    let _nginx = nginx(&nginx_bin, dir.path(), port, &server.addr, upstream);

    let browser = WebDriver::start(&chromium, &driver, dir.path(), &[]).await;
    let authenticator = browser.virtual_authenticator().await;
    let vault = format!("{site}/vault/x");

    // A password sign-in; the two_factor area sends a user without a factor to /account.
    browser.goto(&vault).await;
    browser
        .wait_url("the login page", |u| {
            u.starts_with(&format!("{site}/login?rd="))
        })
        .await;
    assert!(
        browser
            .accessible_name("#passkey")
            .await
            .to_lowercase()
            .contains("passkey"),
        "the login page offers a passkey button"
    );
    browser.type_into("#email", &ada).await;
    browser.type_into("#password", PASSWORD).await;
    browser.click("button[type=submit]").await;
    browser
        .wait_url("the account page", |u| u == format!("{site}/account"))
        .await;
    browser.wait_text("Two-factor authentication").await;

    // Add a passkey: the virtual authenticator makes a resident, user-verified credential;
    // the first factor's recovery codes are shown once.
    browser.type_into("#passkey-name", "laptop").await;
    browser.type_into("#passkey-password", PASSWORD).await;
    assert!(
        browser
            .accessible_name("#passkey-add button")
            .await
            .contains("passkey")
    );
    browser.click("#passkey-add button").await;
    browser.wait_text("id=\"new-recovery-codes\"><li>").await;
    let source = browser.source().await;
    assert_eq!(source.matches("<li>").count(), 10, "ten recovery codes");
    let credentials = browser
        .cdp(
            "WebAuthn.getCredentials",
            json!({"authenticatorId": authenticator}),
        )
        .await;
    let credentials = credentials["credentials"].as_array().unwrap();
    assert_eq!(credentials.len(), 1);
    assert_eq!(credentials[0]["isResidentCredential"], true);
    browser.goto(&format!("{site}/account")).await;
    browser.wait_text("laptop").await;

    // Registering verified the user: this session now passes the two_factor rule.
    browser.goto(&vault).await;
    browser.wait_text(&format!("vault user: {ada}")).await;

    // Sign out; the passkey alone signs in (the login page's button) and opens the vault.
    browser.goto(&format!("{site}/account")).await;
    browser.click("form[action='/logout'] button").await;
    browser.wait_text("You have been signed out").await;
    browser.goto(&vault).await;
    browser
        .wait_url("the login page", |u| {
            u.starts_with(&format!("{site}/login?rd="))
        })
        .await;
    browser.click("#passkey").await;
    browser.wait_url("the vault", |u| u == vault).await;
    browser.wait_text(&format!("vault user: {ada}")).await;

    // Sign out; a password, then the passkey as the second step.
    browser.goto(&format!("{site}/account")).await;
    browser.click("form[action='/logout'] button").await;
    browser.wait_text("You have been signed out").await;
    browser.goto(&vault).await;
    browser
        .wait_url("the login page", |u| {
            u.starts_with(&format!("{site}/login?rd="))
        })
        .await;
    browser.type_into("#email", &ada).await;
    browser.type_into("#password", PASSWORD).await;
    browser.click("button[type=submit]").await;
    browser.wait_text("Enter the 6-digit code").await;
    assert!(
        browser
            .accessible_name("#code")
            .await
            .to_lowercase()
            .contains("code")
    );
    assert!(
        browser
            .accessible_name("#passkey")
            .await
            .contains("passkey")
    );
    browser.click("#passkey").await;
    browser.wait_url("the vault", |u| u == vault).await;
    browser.wait_text(&format!("vault user: {ada}")).await;

    // Remove the passkey: a password alone signs in again, and the vault asks for a factor.
    browser.goto(&format!("{site}/account")).await;
    browser.type_into("#pk-1", PASSWORD).await;
    assert!(
        browser
            .accessible_name("td form button")
            .await
            .contains("passkey")
    );
    browser.click("td form button").await;
    browser.wait_text("The passkey is removed.").await;
    assert!(browser.source().await.contains("None yet."));
    let r = server.login(&ada, PASSWORD).await;
    assert_eq!(r.status(), 200, "one step again");
    browser.click("form[action='/logout'] button").await;
    browser.wait_text("You have been signed out").await;
    browser.goto(&vault).await;
    browser
        .wait_url("the login page", |u| {
            u.starts_with(&format!("{site}/login?rd="))
        })
        .await;
    browser.type_into("#email", &ada).await;
    browser.type_into("#password", PASSWORD).await;
    browser.click("button[type=submit]").await;
    browser
        .wait_url("the account page", |u| u == format!("{site}/account"))
        .await;
    let _ = Duration::ZERO;
    browser.quit().await;
}
