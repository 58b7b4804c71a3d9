use super::*;

fn rule(domain: &str, path: Option<&str>, policy: Policy, roles: &[&str]) -> Rule {
    Rule {
        domain: domain.into(),
        path: path.map(Into::into),
        policy,
        roles: roles.iter().map(|r| r.parse().unwrap()).collect(),
        groups: Vec::new(),
    }
}

fn rules() -> AccessControl {
    AccessControl {
        default_policy: Policy::Deny,
        rules: vec![
            rule("app.example.com", Some("/public"), Policy::Bypass, &[]),
            rule(
                "app.example.com",
                Some("/admin"),
                Policy::Authenticated,
                &["admin"],
            ),
            rule("app.example.com", Some("/blocked"), Policy::Deny, &[]),
            rule("*.example.com", None, Policy::Authenticated, &[]),
            rule("app.example.com", None, Policy::Bypass, &[]),
        ],
    }
}

#[test]
fn first_match_wins_and_default_applies() {
    let ac = rules();
    let admin = [Role::Admin];
    let decide = |host, path| ac.decide(host, path).unwrap();
    let anyone = Decision::Authenticated(Requirements::none());
    let admins = Decision::Authenticated(Requirements::one_of(&admin));
    assert_eq!(decide("app.example.com", "/public/x"), Decision::Bypass);
    assert_eq!(decide("app.example.com", "/public"), Decision::Bypass);
    assert_eq!(decide("app.example.com", "/publicity"), anyone);
    assert_eq!(decide("APP.example.com", "/admin"), admins);
    assert_eq!(decide("app.example.com.", "/admin/x"), admins);
    assert_eq!(decide("app.example.com", "/administrator"), anyone);
    assert_eq!(decide("app.example.com", "/blocked/x"), Decision::Deny);
    assert_eq!(decide("wiki.example.com", "/"), anyone);
    // `*.example.com` is the subdomains, not the bare domain or look-alikes.
    assert_eq!(decide("example.com", "/"), Decision::Deny);
    assert_eq!(decide("evilexample.com", "/"), Decision::Deny);
    assert_eq!(decide("example.com.evil.org", "/"), Decision::Deny);
    assert_eq!(decide("other.org", "/"), Decision::Deny);
    assert_eq!(decide("x.example.COM", "/"), anyone);
}

#[test]
fn every_spelling_of_a_restricted_path_stays_restricted() {
    let ac = rules();
    let admin = [Role::Admin];
    let admins = Decision::Authenticated(Requirements::one_of(&admin));
    for sneaky in [
        "//admin/",
        "/%61dmin/y",
        "/%2561dmin",
        "/./admin",
        "/.%2fadmin",
        "\\admin",
        "/x\\..\\../admin",
        "/ADMIN",
        "/Admin/",
        "/aDmIn/x",
        "/admin;x=1/",
        "/admin;jsessionid=1",
        "/%41DMIN",
        "/admin.",
        "/admin%20/x",
        "/admin%3F/x",
        "/admin%23",
        "/public%2F..%2Fadmin",
        "/public/x%2f..%2f..%2fadmin",
    ] {
        let got = ac.decide("app.example.com", sneaky);
        assert!(
            got == Ok(admins.clone()) || got.is_err(),
            "{sneaky}: {got:?}"
        );
    }
    for blocked in [
        "/BLOCKED",
        "/blocked;a",
        "/%62locked",
        "/.//blocked",
        "/x/..;/blocked",
    ] {
        let got = ac.decide("app.example.com", blocked);
        assert!(
            got == Ok(Decision::Deny) || got.is_err(),
            "{blocked}: {got:?}"
        );
    }
}

#[test]
fn the_reviews_cases() {
    let ac = rules();
    for path in [
        "/admin/..%2Fpublic/x",
        "/public/..%2Fadmin",
        "/public/%2e%2e/admin",
        "/public/..;/admin",
        "/public\\..\\admin",
        "/public/%252e%252e/admin",
        "/public/x/../../admin",
        "/public/.%2E/admin",
    ] {
        assert!(ac.decide("app.example.com", path).is_err(), "{path}");
    }
}

#[test]
fn bypass_only_as_written() {
    let ac = rules();
    let anyone = Decision::Authenticated(Requirements::none());
    assert_eq!(
        ac.decide("app.example.com", "/public/x"),
        Ok(Decision::Bypass)
    );
    // A bypass rule does not stretch to other spellings; the next rule decides.
    for path in ["/PUBLIC/x", "/Public", "/public./x", "/public;x/y"] {
        assert_eq!(
            ac.decide("app.example.com", path),
            Ok(anyone.clone()),
            "{path}"
        );
    }
    // But a spelling whose every reading is under /public stays public.
    assert_eq!(
        ac.decide("app.example.com", "//public//x"),
        Ok(Decision::Bypass)
    );
    assert_eq!(
        ac.decide("app.example.com", "/public/%78"),
        Ok(Decision::Bypass)
    );
    assert_eq!(
        ac.decide("app.example.com", "/public/a%2Fb"),
        Ok(Decision::Bypass)
    );
}

#[test]
fn readings_combine_to_the_most_restrictive() {
    let ac = AccessControl {
        default_policy: Policy::Bypass,
        rules: vec![
            rule("a.org", Some("/a/b"), Policy::Bypass, &[]),
            rule("a.org", Some("/a"), Policy::Authenticated, &["user"]),
            rule("a.org", Some("/c"), Policy::Authenticated, &["admin"]),
        ],
    };
    let (user, admin) = ([Role::User], [Role::Admin]);
    // As sent, `/a%2Fb` is one segment under no rule (the default: bypass); decoded it is
    // `/a/b`, a bypass: bypass.
    assert_eq!(ac.decide("a.org", "/a%2Fb"), Ok(Decision::Bypass));
    // `/a;x/b`: `/a/b` (bypass) with parameters dropped, `/a;x/b` (default, bypass) as sent.
    assert_eq!(ac.decide("a.org", "/a;x/b"), Ok(Decision::Bypass));
    // `/a\c`: `/a/c` (user) or `/a\c` (default): the user requirement.
    assert_eq!(
        ac.decide("a.org", "/a\\c"),
        Ok(Decision::Authenticated(Requirements::one_of(&user)))
    );
    // `/c;x\a`: `/c` (admin) and `/c;x/a`, `/c;x\a`: admin.
    let got = ac.decide("a.org", "/c;x\\a").unwrap();
    assert_eq!(got, Decision::Authenticated(Requirements::one_of(&admin)));
    // Two readings under two role rules: both requirements.
    let ac = AccessControl {
        default_policy: Policy::Bypass,
        rules: vec![
            rule("a.org", Some("/x/y"), Policy::Authenticated, &["admin"]),
            rule("a.org", Some("/x"), Policy::Authenticated, &["user"]),
        ],
    };
    // `/x;\y`: `/x` with parameters dropped, `/x/y` with `\` a separator too.
    let Decision::Authenticated(both) = ac.decide("a.org", "/x;\\y").unwrap() else {
        panic!("not authenticated");
    };
    assert!(both.include(&Requirements::one_of(&user)));
    assert!(both.include(&Requirements::one_of(&admin)));
    assert!(!both.allow(Role::User, &[]) && !both.allow(Role::Admin, &[]));
}

#[test]
fn unicode_case_and_windows_trimming_for_restrictive_rules() {
    let ac = AccessControl {
        default_policy: Policy::Bypass,
        rules: vec![rule("a.org", Some("/kibana"), Policy::Deny, &[])],
    };
    for path in [
        "/kibana",
        "/KIBANA",
        "/%E2%84%AAibana",
        "/kibana.",
        "/kibana..",
        "/kibana%20",
        "/kibana.%20./x",
    ] {
        assert_eq!(ac.decide("a.org", path), Ok(Decision::Deny), "{path}");
    }
    assert_eq!(ac.decide("a.org", "/kibanax"), Ok(Decision::Bypass));
    assert_eq!(ac.decide("a.org", "/kib%FFana"), Ok(Decision::Bypass));
}

#[test]
fn requirements() {
    let (admin, staff) = ([Role::Admin], [Role::Admin, Role::User]);
    assert!(Requirements::none().allow(Role::User, &[]));
    assert!(Requirements::one_of(&[]).role_sets().is_empty());
    let mut r = Requirements::one_of(&staff);
    assert!(r.allow(Role::User, &[]));
    r.add(&admin, &[]);
    r.add(&admin, &[]);
    assert_eq!(r.role_sets().len(), 2);
    assert!(r.allow(Role::Admin, &[]) && !r.allow(Role::User, &[]));
    assert!(r.include(&Requirements::one_of(&admin)));
    assert!(!Requirements::none().include(&r));
}

/// The property of the fuzz target `access`, on many generated variants: no spelling of a
/// path is judged more leniently than the plain path.
#[test]
fn no_variant_is_more_lenient_than_its_plain_path() {
    let ac = variants::rules();
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut bytes = |n: usize| (0..n).map(|_| next() as u8).collect::<Vec<u8>>();
    let mut refused = 0;
    for _ in 0..20_000 {
        let n = bytes(1)[0] % 5;
        let choices = bytes(1 + n as usize);
        let n = bytes(1)[0] % 4;
        let ops = bytes(2 * (1 + n as usize));
        let plain = variants::plain(&choices);
        let variant = variants::variant(&plain, &ops);
        for host in variants::HOSTS {
            if let Err(e) = variants::check(&ac, host, &plain, &variant) {
                panic!("{e} (ops {ops:?})");
            }
        }
        refused += usize::from(ac.decide("app.example.org", &variant).is_err());
    }
    // The generator reaches both sides.
    assert!(refused > 1000 && refused < 15_000, "{refused} refused");
}

/// The other property of the fuzz target, on generated paths: a path is never judged more
/// leniently than its fully undone reading.
#[test]
fn no_path_is_more_lenient_than_its_canonical_reading() {
    let ac = variants::rules();
    const PIECES: &[&str] = &[
        "/", "/", "\\", "%", "%2", "%25", "%2F", "%5c", "%2e", ".", ";", ";x", "?", "%3F", "#",
        "%23", "admin", "ADMIN", "public", "secret", "api", "v1", "x", "%61", " ", "%20",
    ];
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut compared = 0;
    for _ in 0..20_000 {
        let n = 1 + next() % 8;
        let path: String = (0..n)
            .map(|_| PIECES[(next() % PIECES.len() as u64) as usize])
            .collect();
        for host in variants::HOSTS {
            let got = ac.decide(host, &path);
            if let Some(canonical) = variants::canonical_plain(&path) {
                let expected = ac.decide(host, &canonical).unwrap();
                assert!(
                    variants::at_least_as_strict(&got, &expected),
                    "{host} {path:?}: {got:?}, its reading {canonical:?}: {expected:?}"
                );
                compared += 1;
            }
        }
    }
    assert!(compared > 10_000, "{compared}");
}

#[test]
fn group_rules_need_one_of_their_groups_and_combine_with_roles() {
    let mut media_rule = rule("media.org", None, Policy::Authenticated, &[]);
    media_rule.groups = vec!["media".into(), "family".into()];
    let mut both_rule = rule("admin.org", None, Policy::Authenticated, &["admin"]);
    both_rule.groups = vec!["ops".into()];
    let ac = AccessControl {
        default_policy: Policy::Deny,
        rules: vec![media_rule, both_rule],
    };
    let Decision::Authenticated(media) = ac.decide("media.org", "/x").unwrap() else {
        panic!("not authenticated");
    };
    assert!(media.names_groups());
    let (family, ops, none) = (["family".to_owned()], ["ops".to_owned()], []);
    assert!(media.allow(Role::User, &family));
    assert!(!media.allow(Role::Admin, &none));
    assert!(!media.allow(Role::Admin, &ops));
    let Decision::Authenticated(both) = ac.decide("admin.org", "/").unwrap() else {
        panic!("not authenticated");
    };
    assert!(both.allow(Role::Admin, &ops));
    assert!(
        !both.allow(Role::User, &ops),
        "a rule with roles and groups asks for both"
    );
    assert!(!both.allow(Role::Admin, &family));
    // An unusual spelling never loses the group requirement.
    let Decision::Authenticated(sneaky) = ac.decide("media.org", "/a/%2e/b;x").unwrap() else {
        panic!("not authenticated");
    };
    assert!(sneaky.include(&media));
}

#[test]
fn two_factor_rules_add_to_what_a_session_needs() {
    let ac = AccessControl {
        default_policy: Policy::Authenticated,
        rules: vec![
            rule("a.org", Some("/vault"), Policy::TwoFactor, &[]),
            rule("a.org", Some("/ops"), Policy::TwoFactor, &["admin"]),
            rule("a.org", Some("/Vault;x"), Policy::Bypass, &[]),
        ],
    };
    let decide = |path| match ac.decide("a.org", path).unwrap() {
        Decision::Authenticated(r) => (r.two_factor(), r.role_sets().len()),
        other => panic!("{path}: {other:?}"),
    };
    assert_eq!(decide("/vault/x"), (true, 0));
    assert_eq!(decide("/VAULT"), (true, 0), "restrictive rules ignore case");
    assert_eq!(decide("/ops"), (true, 1));
    assert_eq!(decide("/other"), (false, 0));
    // A spelling that some reading takes for the vault needs two factors too.
    assert!(decide("/vault;x").0);
    let one = Requirements::none();
    let two = Requirements::of(Policy::TwoFactor, &[], &[]);
    assert!(two.include(&one) && !one.include(&two));
}
