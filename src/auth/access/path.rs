//! The readings of a request path: the ways an application behind the proxy may take it.
//!
//! The proxy passes the path on as the client sent it, and what the application makes of
//! it is not known: it may percent-decode it once, or until nothing changes; it may treat
//! `\` as a separator; it may drop `;` parameters from segments (Tomcat, Spring); it may
//! stop at a decoded `?` or `#`; it may drop `.` segments. A path without `%`, `\`, `;` or
//! dot segments reads one way only (the plain path, repeated slashes merged); any other
//! path has every combination of those choices as a reading, and the rules judge each.
//!
//! No reading may contain a `..` segment (or `...`, `.. `, which some platforms also take
//! for the parent): the request is refused instead. Resolving `..` is where applications
//! disagree most (before or after decoding `%2F`, with or without merging `//`, Windows
//! trimming), and a `..` lets a path climb out of the prefix a rule names; browsers resolve
//! dot segments before they send a request, so a real `..` only comes from a hand-made one.
//! Without `..`, every reading is the same sequence of bytes cut into segments in different
//! places, and no reading can leave a prefix that another reading stays in.

use super::target::Refused;

/// Decoding rounds before a path counts as too deeply encoded to judge.
const MAX_DECODE_ROUNDS: usize = 3;

/// A segment made of dots and spaces (Windows drops trailing dots and spaces, so `.. .`
/// and `..%20` may be the parent there): `.` (or only spaces) or a parent (two dots or more).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dots {
    Current,
    Parent,
}

fn dots(segment: &[u8]) -> Option<Dots> {
    if segment.is_empty() || segment.iter().any(|&b| b != b'.' && b != b' ') {
        None
    } else if segment.iter().filter(|&&b| b == b'.').count() <= 1 {
        Some(Dots::Current)
    } else {
        Some(Dots::Parent)
    }
}

/// Whether `path` reads one way only: visible ASCII without `%`, `\`, `;`, `?` or `#`,
/// and no dot segment.
pub(super) fn is_plain(path: &[u8]) -> bool {
    path.iter()
        .all(|&b| b.is_ascii_graphic() && !matches!(b, b'%' | b'\\' | b';' | b'?' | b'#'))
        && !path.split(|&b| b == b'/').any(|s| dots(s).is_some())
}

/// The segments of a plain path: split at `/`, empty ones (repeated slashes) dropped.
pub(super) fn plain_segments(path: &[u8]) -> impl Iterator<Item = &[u8]> + Clone {
    path.split(|&b| b == b'/').filter(|s| !s.is_empty())
}

/// How one reading takes the path apart.
#[derive(Debug, Clone, Copy)]
struct Choices {
    /// `\` separates segments too.
    backslash: bool,
    /// A `;` starts a parameter that runs to the end of its segment and is dropped.
    parameters: bool,
    /// The path ends at a (decoded) `?` or `#`.
    cut: bool,
    /// `.` segments are dropped.
    drop_dots: bool,
}

/// Every reading of a path that is not plain, each a list of non-empty segments.
pub(super) struct Readings {
    /// The path as sent, decoded once, and decoded until stable; distinct ones only.
    buffers: Vec<Vec<u8>>,
}

impl Readings {
    /// Refuses a path whose readings include a `..` segment, one that decodes to a control
    /// character, or one still encoded after [`MAX_DECODE_ROUNDS`] rounds.
    pub(super) fn of(path: &[u8]) -> Result<Readings, Refused> {
        if path.iter().any(|&b| b < 0x20 || b == 0x7f) {
            return Err(Refused("the path has a control character"));
        }
        let mut buffers = vec![path.to_vec()];
        let mut current = path.to_vec();
        for round in 0..=MAX_DECODE_ROUNDS {
            let Some(next) = percent_decode(&current) else {
                break;
            };
            if round == MAX_DECODE_ROUNDS {
                return Err(Refused(
                    "the path is percent-encoded more than three times over",
                ));
            }
            if next.iter().any(|&b| b < 0x20 || b == 0x7f) {
                return Err(Refused("the path decodes to a control character"));
            }
            // Once and fully decoded are the readings; the rounds in between are not.
            if round == 0 {
                buffers.push(next.clone());
            }
            current = next;
        }
        if buffers.last() != Some(&current) {
            buffers.push(current);
        }
        let readings = Readings { buffers };
        readings.try_for_each(|_| Ok::<_, Refused>(()))?;
        Ok(readings)
    }

    /// Calls `f` with every reading (duplicates possible), stopping at the first error.
    pub(super) fn try_for_each<E: From<Refused>>(
        &self,
        mut f: impl FnMut(&[&[u8]]) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut segments = Vec::new();
        for buffer in &self.buffers {
            let has = |set: &[u8]| buffer.iter().any(|b| set.contains(b));
            let (backslash, parameters, cut) = (has(b"\\"), has(b";"), has(b"?#"));
            for bits in 0u8..16 {
                let choices = Choices {
                    backslash: bits & 1 != 0,
                    parameters: bits & 2 != 0,
                    cut: bits & 4 != 0,
                    drop_dots: bits & 8 != 0,
                };
                // A choice about a character the buffer lacks reads the same as without it.
                if (choices.backslash && !backslash)
                    || (choices.parameters && !parameters)
                    || (choices.cut && !cut)
                {
                    continue;
                }
                segments.clear();
                split(buffer, choices, &mut segments)?;
                f(&segments)?;
            }
        }
        Ok(())
    }
}

fn split<'b>(path: &'b [u8], choices: Choices, out: &mut Vec<&'b [u8]>) -> Result<(), Refused> {
    let path = match choices.cut {
        true => {
            &path[..path
                .iter()
                .position(|b| matches!(b, b'?' | b'#'))
                .unwrap_or(path.len())]
        }
        false => path,
    };
    for segment in path.split(|&b| b == b'/' || (choices.backslash && b == b'\\')) {
        let segment = match choices.parameters {
            true => {
                &segment[..segment
                    .iter()
                    .position(|&b| b == b';')
                    .unwrap_or(segment.len())]
            }
            false => segment,
        };
        match dots(segment) {
            Some(Dots::Parent) => {
                return Err(Refused(
                    "the path has a '..' segment (plain, encoded, with '\\' or ';'); send the resolved path",
                ));
            }
            Some(Dots::Current) if choices.drop_dots => continue,
            _ => {}
        }
        if !segment.is_empty() {
            out.push(segment);
        }
    }
    Ok(())
}

/// One round of percent-decoding; `None` when there is nothing to decode. A `%` not
/// followed by two hex digits stays as it is.
fn percent_decode(input: &[u8]) -> Option<Vec<u8>> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out: Option<Vec<u8>> = None;
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%' && i + 2 < input.len() {
            if let (Some(h), Some(l)) = (hex(input[i + 1]), hex(input[i + 2])) {
                let out = out.get_or_insert_with(|| {
                    let mut v = Vec::with_capacity(input.len());
                    v.extend_from_slice(&input[..i]);
                    v
                });
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        if let Some(out) = out.as_mut() {
            out.push(input[i]);
        }
        i += 1;
    }
    out
}

/// The reading that undoes everything: decoded until stable, `\` and `/` both separators,
/// parameters and `.` segments dropped, cut at a decoded `?` or `#`; joined with `/`.
/// `None` when the path is refused. For tests and fuzzing: a path must never be judged
/// more leniently than this reading of it.
#[cfg(any(test, fuzzing))]
pub(super) fn canonical(path: &[u8]) -> Option<Vec<u8>> {
    let readings = Readings::of(path).ok()?;
    let full = readings.buffers.last()?;
    let mut segments = Vec::new();
    let choices = Choices {
        backslash: true,
        parameters: true,
        cut: true,
        drop_dots: true,
    };
    split(full, choices, &mut segments).ok()?;
    let mut out = Vec::with_capacity(path.len());
    for segment in segments {
        out.push(b'/');
        out.extend_from_slice(segment);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readings(path: &str) -> Result<Vec<Vec<String>>, Refused> {
        let mut all = Vec::new();
        Readings::of(path.as_bytes())?.try_for_each(|segments| {
            all.push(
                segments
                    .iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect::<Vec<_>>(),
            );
            Ok::<_, Refused>(())
        })?;
        all.sort();
        all.dedup();
        Ok(all)
    }

    #[test]
    fn plain_paths_read_one_way() {
        for plain in [
            "/",
            "",
            "/admin",
            "//admin//x/",
            "/a.b/c..d/.e",
            "/a:b@c!$&'()*+,=~",
        ] {
            assert!(is_plain(plain.as_bytes()), "{plain}");
        }
        for not in [
            "/%61",
            "/a\\b",
            "/a;b",
            "/a?b",
            "/a#b",
            "/x y",
            "/a\tb",
            "/caf\u{e9}",
            "/./a",
            "/a/.",
            "/../a",
            "/a/..",
            "/.../a",
            "/.. /a",
        ] {
            assert!(!is_plain(not.as_bytes()), "{not}");
        }
        let segments: Vec<_> = plain_segments(b"//admin//x/").collect();
        assert_eq!(segments, [b"admin".as_slice(), b"x"]);
    }

    #[test]
    fn readings_cover_each_interpretation() {
        let r = |p| readings(p).unwrap();
        assert_eq!(r("/%61dmin"), [vec!["%61dmin"], vec!["admin"]]);
        assert_eq!(
            r("/admin;x=1/y"),
            [vec!["admin", "y"], vec!["admin;x=1", "y"]]
        );
        assert_eq!(r("/a\\admin"), [vec!["a", "admin"], vec!["a\\admin"]]);
        assert_eq!(r("/./admin"), [vec![".", "admin"], vec!["admin"]]);
        assert_eq!(r("/public%2Fx"), [vec!["public", "x"], vec!["public%2Fx"]]);
        assert_eq!(
            r("/admin%3F/x"),
            [vec!["admin"], vec!["admin%3F", "x"], vec!["admin?", "x"]]
        );
        // Decoded once, and until stable (here three rounds).
        assert_eq!(
            r("/%252561dmin"),
            [vec!["%252561dmin"], vec!["%2561dmin"], vec!["admin"]]
        );
    }

    #[test]
    fn parent_segments_are_refused_in_every_disguise() {
        for path in [
            "/..",
            "/a/../b",
            "/admin/..%2Fpublic/x",
            "/public/..%2Fadmin",
            "/public/%2e%2e/admin",
            "/public/%2E%2e/admin",
            "/public/.%2e/admin",
            "/public/..;/admin",
            "/public/..;x=1/admin",
            "/public\\..\\admin",
            "/public%5C..%5Cadmin",
            "/public/%252e%252e/admin",
            "/public/%25252e%25252e/admin",
            "/public/.../admin",
            "/public/..%20/admin",
            "/public/.%20./admin",
            "/public/..%20./admin",
            "/public/%2e%2e%3b/admin",
            "/public/..%3Fx",
        ] {
            assert!(readings(path).is_err(), "{path} was not refused");
        }
    }

    #[test]
    fn other_refusals() {
        assert!(readings("/a%00b").is_err());
        assert!(readings("/a%0Ab").is_err());
        assert!(readings("/a%252500b").is_err());
        assert!(readings("/%25252561").is_err(), "four rounds");
        assert!(readings("/%252561").is_ok(), "three rounds");
        // A lone or broken escape is kept, not refused.
        assert!(readings("/a%zz/%").is_ok());
        assert!(readings("/100%25").is_ok());
    }

    #[test]
    fn decoding() {
        assert_eq!(percent_decode(b"/plain"), None);
        assert_eq!(percent_decode(b"/%61%2F%2f%zz%").unwrap(), b"/a//%zz%");
        assert_eq!(percent_decode(b"%41").unwrap(), b"A");
        assert_eq!(percent_decode(b"%4"), None);
    }

    #[test]
    fn canonical_reading() {
        let c = |p: &str| canonical(p.as_bytes()).map(|v| String::from_utf8(v).unwrap());
        assert_eq!(c("/%61dmin;x/./y%5Cz").as_deref(), Some("/admin/y/z"));
        assert_eq!(c("//").as_deref(), Some("/"));
        assert_eq!(c("/a/../b"), None);
    }
}
