//! The committed files that `cargo deb` packages as they are, held to what they are made
//! from: the packaged config (`config.toml` with the packaged data dir), the man page and the
//! shell completions (generated from the clap definition of the command line).
//!
//! After changing `config.toml` or the command line, regenerate them with
//! `GATEHOUSE_BLESS=1 cargo test --test packaging` and commit the result.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;
use gatehouse::cli::Cli;

/// The header of the packaged `/etc/gatehouse/config.toml`; the rest is `config.toml`.
const CONFIG_HEADER: &str = r#"# /etc/gatehouse/config.toml, as shipped by the gatehouse Debian package: the project's
# documented defaults, with data_dir = /var/lib/gatehouse. A conffile: your edits survive
# upgrades. gatehouse.service runs `gatehouse serve --config /etc/gatehouse/config.toml` as
# the user gatehouse, and may write only to /var/lib/gatehouse (ProtectSystem=strict), so keep
# data_dir there. The signing secret is /etc/gatehouse/jwt_secret (systemd credential
# "jwt_secret", mode 0600), not a key in this file. After editing: `gatehouse check-config
# --config /etc/gatehouse/config.toml`, then `systemctl restart gatehouse`.
#
"#;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Whether to rewrite the committed files instead of checking them.
fn blessing() -> bool {
    std::env::var_os("GATEHOUSE_BLESS").is_some_and(|v| v == "1")
}

/// Compares the committed file with what it should be; with `GATEHOUSE_BLESS=1`, rewrites it.
fn check_generated(relative: &str, expected: &[u8]) {
    let path = root().join(relative);
    if blessing() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, expected).unwrap();
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == expected,
        "{relative} is stale (or missing): regenerate it with \
         `GATEHOUSE_BLESS=1 cargo test --test packaging` and commit it"
    );
}

#[test]
fn packaged_config_is_config_toml_with_the_packaged_data_dir() {
    let documented = std::fs::read_to_string(root().join("config.toml")).unwrap();
    let line = r#"data_dir = "./data""#;
    assert_eq!(
        documented.lines().filter(|l| *l == line).count(),
        1,
        "config.toml should have exactly one line `{line}` for the package to rewrite"
    );
    let body: String = documented
        .split_inclusive('\n')
        .map(|l| {
            if l.trim_end_matches('\n') == line {
                "data_dir = \"/var/lib/gatehouse\"\n"
            } else {
                l
            }
        })
        .collect();
    let expected = format!("{CONFIG_HEADER}{body}");
    check_generated("packaging/config.toml", expected.as_bytes());
}

/// `gatehouse.1` and one page per subcommand (`gatehouse-user-add.1`, …), which it refers to.
#[test]
fn man_pages_are_current() {
    let dir = tempfile::tempdir().unwrap();
    clap_mangen::generate_to(Cli::command(), dir.path()).unwrap();
    let pages = |dir: &Path| -> BTreeSet<String> {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .map(|e| e.unwrap().file_name().into_string().unwrap())
                    .filter(|name| name.ends_with(".1"))
                    .collect()
            })
            .unwrap_or_default()
    };
    let generated = pages(dir.path());
    assert!(generated.contains("gatehouse.1") && generated.contains("gatehouse-user-add.1"));
    let committed_dir = root().join("packaging/man");
    for stale in pages(&committed_dir).difference(&generated) {
        if blessing() {
            std::fs::remove_file(committed_dir.join(stale)).unwrap();
        } else {
            panic!(
                "packaging/man/{stale} is no longer generated: delete it \
                 (`GATEHOUSE_BLESS=1 cargo test --test packaging` does)"
            );
        }
    }
    for page in &generated {
        let text = std::fs::read(dir.path().join(page)).unwrap();
        check_generated(&format!("packaging/man/{page}"), &text);
    }
}

#[test]
fn shell_completions_are_current() {
    for (shell, file) in [
        (Shell::Bash, "gatehouse.bash"),
        (Shell::Zsh, "_gatehouse"),
        (Shell::Fish, "gatehouse.fish"),
    ] {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "gatehouse", &mut script);
        check_generated(&format!("packaging/completions/{file}"), &script);
    }
}

#[test]
fn the_deb_assets_are_the_committed_files() {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    for (source, target) in [
        ("packaging/config.toml", "etc/gatehouse/config.toml"),
        ("packaging/man/*.1", "usr/share/man/man1/"),
        (
            "packaging/completions/gatehouse.bash",
            "usr/share/bash-completion/completions/gatehouse",
        ),
        (
            "packaging/completions/_gatehouse",
            "usr/share/zsh/vendor-completions/_gatehouse",
        ),
        (
            "packaging/completions/gatehouse.fish",
            "usr/share/fish/vendor_completions.d/gatehouse.fish",
        ),
    ] {
        let asset = format!(r#"["{source}", "{target}", "644"]"#);
        assert!(
            manifest.contains(&asset),
            "Cargo.toml's [package.metadata.deb] assets lack {asset}"
        );
        // (While blessing, the other tests may not have written it yet.)
        if !blessing() {
            let file = source.replace("*.1", "gatehouse.1");
            assert!(root().join(&file).is_file(), "{file} missing");
        }
    }
}
