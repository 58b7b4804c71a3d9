//! The forward-auth access decision (issue #19): no spelling of a path, and no authority,
//! may be judged more leniently than the plain request it stands for.
//!
//! The first byte picks the mode:
//! - 0: structured. The rest picks a host, a plain path from the rules' vocabulary and
//!   rewrites of it that some application undoes (encodings, `./`, `x/../`, `;p`, `\`,
//!   case, trailing dots, repeated slashes); the variant, directly and through the
//!   forwarded headers and `X-Original-URL`, must be refused or judged at least as strictly
//!   as the plain path (`auth::access::variants`, the same property `cargo test` checks).
//! - 1: an arbitrary path (lossy UTF-8): never more lenient than its fully undone reading.
//! - 2: arbitrary forwarded headers and an `X-Original-URL` (lines of the input): parsing
//!   never panics, an accepted host is only letters, digits, `-` and `.` or a bracketed
//!   IPv6 address, and the decision keeps the property of mode 1.
#![no_main]

use std::sync::OnceLock;

use gatehouse::auth::access::variants::{self, HOSTS};
use gatehouse::auth::access::{AccessControl, Decide, Target};
use libfuzzer_sys::fuzz_target;

fn rules() -> &'static AccessControl {
    static RULES: OnceLock<AccessControl> = OnceLock::new();
    RULES.get_or_init(variants::rules)
}

fn structured(data: &[u8]) {
    let [host, n, rest @ ..] = data else {
        return;
    };
    let host = HOSTS[*host as usize % HOSTS.len()];
    let n = 1 + (*n as usize % 6).min(rest.len());
    let (choices, ops) = rest.split_at(n.min(rest.len()));
    let plain = variants::plain(choices);
    let variant = variants::variant(&plain, ops);
    if let Err(e) = variants::check(rules(), host, &plain, &variant) {
        panic!("{e}");
    }
    let expected = rules().decide(host, &plain).expect("a plain path is judged");
    if let Ok(target) = Target::forwarded("https", host, &variant) {
        let got = rules().decide(target.host(), target.path());
        assert!(
            variants::at_least_as_strict(&got, &expected),
            "X-Forwarded-Uri {variant:?}: {got:?}, plain {plain:?}: {expected:?}"
        );
    }
    let url = format!("https://{host}{variant}");
    if let Ok(target) = Target::original_url(&url) {
        let got = rules().decide(target.host(), target.path());
        assert!(
            variants::at_least_as_strict(&got, &expected),
            "X-Original-URL {url:?}: {got:?}, plain {plain:?}: {expected:?}"
        );
    }
}

fn never_more_lenient_than_canonical(host: &str, path: &str) {
    let got = rules().decide(host, path);
    if let Some(canonical) = variants::canonical_plain(path) {
        let expected = rules()
            .decide(host, &canonical)
            .expect("a plain path is judged");
        assert!(
            variants::at_least_as_strict(&got, &expected),
            "{host} {path:?}: {got:?}, its reading {canonical:?}: {expected:?}"
        );
    }
}

fn check_host(host: &str) {
    let ok = match host.strip_prefix('[') {
        Some(v6) => v6
            .strip_suffix(']')
            .is_some_and(|inside| inside.parse::<std::net::Ipv6Addr>().is_ok()),
        None => {
            !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        }
    };
    assert!(ok, "accepted host {host:?}");
}

fn arbitrary(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let host = HOSTS[data.first().copied().unwrap_or(0) as usize % HOSTS.len()];
    never_more_lenient_than_canonical(host, &text);
}

fn headers(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let (proto, host, uri, url) = (
        lines.next().unwrap_or_default(),
        lines.next().unwrap_or_default(),
        lines.next().unwrap_or_default(),
        lines.next().unwrap_or_default(),
    );
    for target in [Target::forwarded(proto, host, uri), Target::original_url(url)]
        .into_iter()
        .flatten()
    {
        check_host(target.host());
        assert!(target.path().starts_with('/'), "{:?}", target.path());
        never_more_lenient_than_canonical(target.host(), target.path());
    }
    if let Ok(host) = gatehouse::auth::access::target::authority(host) {
        check_host(host);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => structured(rest),
        1 => arbitrary(rest),
        _ => headers(rest),
    }
});
