//! Email addresses, which are the login names: the syntax accepted, the form under which
//! they are unique ([`normalize_email`]) and the form stored and shown ([`display_email`]).
//! Violations are answered with 422 and a sentence a person can act on.

/// Longest email (RFC 5321's path limit).
pub const MAX_EMAIL_BYTES: usize = 254;

/// Longest local part (RFC 5321).
const MAX_LOCAL_BYTES: usize = 64;
/// Longest domain label (RFC 1035).
const MAX_LABEL_BYTES: usize = 63;

/// A conservative address syntax, because the email is the login name and travels as
/// `Remote-User` to every app: `local@domain` where the local part is dot-separated atoms
/// (no quoted strings, no comments) and the domain a host name of at least two labels (no IP
/// literal). Beyond ASCII, only letters, combining marks and digits, never spaces, controls,
/// bidi or zero-width characters, compatibility forms (full-width letters, ligatures) or a
/// mix of scripts within one part: nothing that renders like another address.
pub fn check_email(email: &str) -> Result<(), String> {
    const INVALID: &str = "the email is not a valid address like name@example.org";
    if email.len() > MAX_EMAIL_BYTES {
        return Err(format!(
            "the email is longer than {MAX_EMAIL_BYTES} characters"
        ));
    }
    if let Some(c) = email.chars().find(|c| is_hidden(*c)) {
        return Err(format!(
            "the email contains a space, a control or an invisible character (U+{:04X}); type it without",
            u32::from(c)
        ));
    }
    let composed = icu_normalizer::ComposingNormalizerBorrowed::new_nfc().normalize(email);
    if icu_normalizer::ComposingNormalizerBorrowed::new_nfkc().normalize(&composed) != composed {
        return Err("the email contains compatibility characters (such as full-width letters or ligatures); type it with ordinary characters".into());
    }
    let (local, domain) = email.rsplit_once('@').ok_or(INVALID)?;
    if local.starts_with('"') || local.contains(['"', '\\']) {
        return Err(
            "the email's local part must not be quoted; use a plain address like name@example.org"
                .into(),
        );
    }
    if local.contains(['(', ')']) || domain.contains(['(', ')']) {
        return Err("the email must not contain comments in parentheses".into());
    }
    if domain.starts_with('[') || domain.parse::<std::net::IpAddr>().is_ok() {
        return Err("the email's domain must be a name like example.org, not an IP address".into());
    }
    if local.is_empty()
        || local.len() > MAX_LOCAL_BYTES
        || !local.split('.').all(|atom| is_atom(atom, is_atext))
    {
        return Err(INVALID.into());
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return Err("the email's domain must be a full domain like example.org".into());
    }
    let label_ok = |label: &str| {
        label.len() <= MAX_LABEL_BYTES
            && is_atom(label, |c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    let tld_is_numeric = labels
        .last()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()));
    if !labels.iter().all(|l| label_ok(l)) || tld_is_numeric {
        return Err(INVALID.into());
    }
    if std::iter::once(local)
        .chain(labels.iter().copied())
        .any(mixes_scripts)
    {
        return Err("the email mixes letters of different scripts in one part (such as Latin and Cyrillic), so it could pass for another address".into());
    }
    Ok(())
}

/// Whitespace, controls, format characters (bidi controls, zero-width joiners and spaces)
/// and anything else Unicode says to render invisibly.
fn is_hidden(c: char) -> bool {
    use icu_properties::props::{DefaultIgnorableCodePoint, GeneralCategory as G, WhiteSpace};
    use icu_properties::{CodePointMapData, CodePointSetData};
    matches!(
        CodePointMapData::<G>::new().get(c),
        G::Control | G::Format | G::SpaceSeparator | G::LineSeparator | G::ParagraphSeparator
    ) || CodePointSetData::new::<WhiteSpace>().contains(c)
        || CodePointSetData::new::<DefaultIgnorableCodePoint>().contains(c)
}

/// RFC 5322 `atext` (ASCII), for local parts.
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c)
}

/// A non-empty run of `ascii` characters or, beyond ASCII, letters, digits and combining
/// marks; a mark only after a letter, digit or mark (never at the start, where it would
/// combine with the `@` or `.` before it).
fn is_atom(atom: &str, ascii: impl Fn(char) -> bool) -> bool {
    use icu_properties::CodePointMapData;
    use icu_properties::props::GeneralCategory as G;
    let mut after_letter = false;
    !atom.is_empty()
        && atom.chars().all(|c| {
            if c.is_ascii() {
                after_letter = c.is_ascii_alphanumeric();
                return ascii(c);
            }
            match CodePointMapData::<G>::new().get(c) {
                G::UppercaseLetter
                | G::LowercaseLetter
                | G::TitlecaseLetter
                | G::ModifierLetter
                | G::OtherLetter
                | G::DecimalNumber
                | G::LetterNumber
                | G::OtherNumber => {
                    after_letter = true;
                    true
                }
                G::NonspacingMark | G::SpacingMark | G::EnclosingMark => after_letter,
                _ => false,
            }
        })
}

/// Whether `part` has letters of more than one script, beyond the combinations that Unicode's
/// "highly restrictive" profile (UTS #39) allows for Chinese, Japanese and Korean with Latin.
fn mixes_scripts(part: &str) -> bool {
    use icu_properties::CodePointMapData;
    use icu_properties::props::Script;
    let mut scripts: Vec<Script> = Vec::new();
    for c in part.chars() {
        let script = CodePointMapData::<Script>::new().get(c);
        if script != Script::Common && script != Script::Inherited && !scripts.contains(&script) {
            scripts.push(script);
        }
    }
    let within = |allowed: &[Script]| scripts.iter().all(|s| allowed.contains(s));
    scripts.len() > 1
        && !within(&[
            Script::Latin,
            Script::Han,
            Script::Hiragana,
            Script::Katakana,
        ])
        && !within(&[Script::Latin, Script::Han, Script::Bopomofo])
        && !within(&[Script::Latin, Script::Han, Script::Hangul])
}

/// The form under which emails are unique and looked up: `Ada@X.org` and `ada@x.org`, or
/// the NFC and NFD forms of `jürgen@x.org`, are one account. It is Unicode's compatibility
/// caseless match (D146: NFKD, full case folding, twice, after NFD), composed again (NFC)
/// to keep keys short. For ASCII that is plain lower case, as it always was, so the keys of
/// existing ASCII accounts do not change (others are re-indexed once, see README).
pub fn normalize_email(email: &str) -> String {
    use icu_casemap::CaseMapperBorrowed;
    use icu_normalizer::{ComposingNormalizerBorrowed, DecomposingNormalizerBorrowed};
    let email = email.trim();
    if email.is_ascii() {
        return email.to_ascii_lowercase();
    }
    let fold = CaseMapperBorrowed::new();
    let nfkd = DecomposingNormalizerBorrowed::new_nfkd();
    let mut key = DecomposingNormalizerBorrowed::new_nfd()
        .normalize(email)
        .into_owned();
    for _ in 0..2 {
        key = nfkd.normalize(&fold.fold_string(&key)).into_owned();
    }
    ComposingNormalizerBorrowed::new_nfc()
        .normalize(&key)
        .into_owned()
}

/// The form in which an email is stored and shown (in `Remote-User`, tokens, `/auth/me`):
/// as typed, trimmed and composed (NFC), so that one address never travels as two byte
/// strings depending on how the keyboard spelled it.
pub fn display_email(email: &str) -> String {
    icu_normalizer::ComposingNormalizerBorrowed::new_nfc()
        .normalize(email.trim())
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        for good in [
            "ada@example.org",
            "Ada.Lovelace+x@sub.example.org",
            "o'brien@example.ie",
            "jürgen@bücher.de",
            "ju\u{308}rgen@example.org",
            "STRASSE@example.org",
            "straße@example.org",
            "ελένη@παράδειγμα.gr",
            "пример@пример.рф",
            "山田太郎@例え.jp",
            "yamada東京@example.jp",
            "user@xn--bcher-kva.de",
        ] {
            assert!(
                check_email(good).is_ok(),
                "{good:?}: {:?}",
                check_email(good)
            );
        }
        for (bad, why) in [
            ("", "valid address"),
            ("ada", "valid address"),
            ("ada@", "full domain"),
            ("@x.org", "valid address"),
            ("ada@localhost", "full domain"),
            ("ada..b@x.org", "valid address"),
            (".ada@x.org", "valid address"),
            ("ada@x..org", "valid address"),
            ("ada@-x.org", "valid address"),
            ("ada@x.org.", "valid address"),
            ("a@b@x.org", "valid address"),
            ("ada@x_y.org", "valid address"),
            ("ada@1.2.3.4", "IP address"),
            ("ada@[192.0.2.1]", "IP address"),
            ("ada@[IPv6:2001:db8::1]", "IP address"),
            ("ada@x.123", "valid address"),
            ("\"ada\"@x.org", "quoted"),
            ("\"a b\"@x.org", "space"),
            ("\"a@b\"@x.org", "quoted"),
            ("a\\b@x.org", "quoted"),
            ("ada(comment)@x.org", "comments"),
            ("ada@(comment)x.org", "comments"),
            (" ada@x.org", "space"),
            ("ada@x.org ", "space"),
            ("a b@x.org", "space"),
            ("ada@x.org\r\nX-Admin: 1", "control"),
            ("ada\u{0}@x.org", "control"),
            ("ada\u{200b}@x.org", "invisible"),
            ("ad\u{200d}a@x.org", "invisible"),
            ("ada\u{202e}gro.x@x.org", "invisible"),
            ("ada\u{2066}@x.org", "invisible"),
            ("ada\u{ad}@x.org", "invisible"),
            ("ada\u{3164}@x.org", "invisible"),
            ("ada\u{fe0f}@x.org", "invisible"),
            ("ada\u{a0}@x.org", "space"),
            ("ａｄａ@x.org", "compatibility"),
            ("ada@ｘ.org", "compatibility"),
            ("\u{fb01}le@x.org", "compatibility"),
            ("ada\u{2460}@x.org", "compatibility"),
            ("ada＠x.org", "compatibility"),
            ("\u{308}ada@x.org", "valid address"),
            ("ada@\u{308}x.org", "valid address"),
            ("ada\u{2024}x@x.org", "compatibility"),
            ("ada\u{2022}@x.org", "valid address"),
            ("ada<b>@x.org", "valid address"),
            ("ada,b@x.org", "valid address"),
            ("pаypal@x.org", "scripts"),
            ("ada@pаypal.com", "scripts"),
        ] {
            let err = check_email(bad).expect_err(bad);
            assert!(err.contains(why), "{bad:?}: {err}");
        }
        assert!(check_email(&format!("{}@x.org", "a".repeat(65))).is_err());
        assert!(check_email(&format!("ada@{}.org", "a".repeat(64))).is_err());
        assert!(check_email(&format!("{}@x.org", "a".repeat(64))).is_ok());
    }

    #[test]
    fn emails_are_one_account_after_nfkc_and_case_folding() {
        let key = normalize_email;
        // ASCII: lower case, exactly as before, so existing keys stay valid.
        assert_eq!(
            key(" Ada.Lovelace@Example.ORG "),
            "ada.lovelace@example.org"
        );
        // NFC and NFD, any case: one key, composed.
        let nfc = "j\u{fc}rgen@x.org";
        let nfd = "ju\u{308}rgen@x.org";
        assert_eq!(key(nfc), nfc);
        assert_eq!(key(nfd), nfc);
        assert_eq!(key("JU\u{308}RGEN@X.ORG"), nfc);
        assert_eq!(key("J\u{dc}RGEN@x.org"), nfc);
        // Full case folding, where lower case is not enough.
        assert_eq!(key("straße@x.org"), key("STRASSE@x.org"));
        assert_eq!(key("Straße@x.org"), "strasse@x.org");
        assert_eq!(key("ΣΊΣΥΦΟΣ@x.gr"), key("σίσυφος@x.gr"));
        assert_eq!(key("ſ@x.org"), "s@x.org");
        // Compatibility forms fold too (a login typed with them finds the account).
        assert_eq!(key("ＡＤＡ@x.org"), "ada@x.org");
        assert_eq!(key("\u{fb01}@x.org"), "fi@x.org");
        // The key is stable: normalising it again changes nothing.
        for email in [
            nfc,
            nfd,
            "straße@x.org",
            "ΣΊΣΥΦΟΣ@x.gr",
            "ǅ@x.org",
            "ᾳ@x.gr",
        ] {
            assert_eq!(key(&key(email)), key(email), "{email}");
        }
    }
}
