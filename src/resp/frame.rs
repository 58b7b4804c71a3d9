//! RESP on the wire: requests in, replies out.
//!
//! Requests come as clients send them (a multibulk `*<n>\r\n$<len>\r\n<bytes>\r\n…`) or as a
//! person types them over telnet (an inline line, split like redis-cli splits: spaces, and
//! quotes with escapes). Replies go out in RESP2, or in RESP3 once a connection said
//! `HELLO 3`.
//!
//! The parser is the part an attacker reaches first, so it is bounded ([`MAX_ARGS`],
//! [`MAX_BULK`], [`MAX_INLINE`], [`MAX_REQUEST`]) and never sizes an allocation by a length
//! the client wrote: a bulk's bytes are only looked at once they have arrived (the caller's
//! buffer grows by what was read), and an argument list grows one parsed argument at a time.
//! A request is parsed again from its start each time more of it arrives; that costs at most
//! [`MAX_ARGS`] header lines per read, since bulks are skipped by their length.

use std::borrow::Cow;
use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};

/// Most arguments in one request (command name included). Redis allows 1,048,576; a
/// session check needs a few, and `EXISTS` of a thousand keys still fits.
pub const MAX_ARGS: usize = 1024;
/// Longest argument, bytes (Redis: 512 MB). Keys, passwords and `ECHO` messages fit.
pub const MAX_BULK: usize = 64 * 1024;
/// Longest inline request line, bytes (as in Redis).
pub const MAX_INLINE: usize = 64 * 1024;
/// Most bytes one request may take on the wire: bounds what a connection buffers for a
/// request that has not fully arrived.
pub const MAX_REQUEST: usize = 1024 * 1024;
/// Longest `*<n>` or `$<len>` line: a count past this many digits is not a count.
const MAX_COUNT_LINE: usize = 32;

/// Why a request could not be read. The connection answers the message as an `-ERR` and
/// closes, as Redis does: after a framing error the rest of the stream cannot be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("Protocol error: invalid multibulk length")]
    MultibulkLength,
    #[error("Protocol error: invalid bulk length")]
    BulkLength,
    #[error("Protocol error: expected '$', got '{0}'")]
    ExpectedBulk(char),
    #[error("Protocol error: expected CRLF after a bulk string")]
    ExpectedCrlf,
    #[error("Protocol error: too big mbulk count string")]
    CountTooLong,
    #[error("Protocol error: too big inline request")]
    InlineTooBig,
    #[error("Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
    #[error("Protocol error: request too large")]
    RequestTooLarge,
}

/// One request: the command name and its arguments, as sent (not case-folded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub args: Vec<Bytes>,
}

/// What the start of the buffer holds.
enum Scan {
    /// Not all of it has arrived.
    Incomplete,
    /// Nothing to run (an empty line, `*0`, `*-1`): skip this many bytes.
    Skip(usize),
    /// A multibulk request: its arguments as ranges of the buffer, and its length.
    Multibulk(Vec<Range<usize>>, usize),
    /// An inline request: its arguments, unquoted, and the line's length.
    Inline(Vec<Vec<u8>>, usize),
}

/// Takes the next complete request off the front of `buf`: `Ok(None)` until one has fully
/// arrived. Requests that are empty (`*0`, a blank line) are skipped, as Redis does.
/// Multibulk arguments share `buf`'s memory (no copy).
pub fn parse(buf: &mut BytesMut) -> Result<Option<Request>, ProtocolError> {
    loop {
        match scan(buf)? {
            Scan::Incomplete => {
                if buf.len() > MAX_REQUEST {
                    return Err(ProtocolError::RequestTooLarge);
                }
                return Ok(None);
            }
            Scan::Skip(len) => {
                let _ = buf.split_to(len);
            }
            Scan::Multibulk(ranges, len) => {
                let frame = buf.split_to(len).freeze();
                let args = ranges.into_iter().map(|r| frame.slice(r)).collect();
                return Ok(Some(Request { args }));
            }
            Scan::Inline(args, len) => {
                let _ = buf.split_to(len);
                let args = args.into_iter().map(Bytes::from).collect();
                return Ok(Some(Request { args }));
            }
        }
    }
}

/// Parses every request in `data` as one connection would receive it, `chunk` bytes per
/// read, and says how it ended: the entry point of the `resp_frame` fuzz target, which checks
/// the bounds and that the reads' sizes change nothing.
#[doc(hidden)]
pub fn parse_stream(data: &[u8], chunk: usize) -> (Vec<Request>, Option<ProtocolError>) {
    let mut buf = BytesMut::new();
    let mut requests = Vec::new();
    for chunk in data.chunks(chunk.max(1)) {
        buf.extend_from_slice(chunk);
        loop {
            match parse(&mut buf) {
                Ok(Some(request)) => requests.push(request),
                Ok(None) => break,
                Err(e) => return (requests, Some(e)),
            }
        }
    }
    (requests, None)
}

fn scan(buf: &[u8]) -> Result<Scan, ProtocolError> {
    match buf.first() {
        None => Ok(Scan::Incomplete),
        Some(b'*') => scan_multibulk(buf),
        Some(_) => scan_inline(buf),
    }
}

/// The position of the `\r\n` that ends the line starting at `from`, looking at most
/// `max` bytes ahead: `Ok(None)` if it has not arrived yet.
fn line_end(buf: &[u8], from: usize, max: usize) -> Result<Option<usize>, ProtocolError> {
    let window = &buf[from..buf.len().min(from + max + 2)];
    match window.windows(2).position(|w| w == b"\r\n") {
        Some(at) => Ok(Some(from + at)),
        None if window.len() >= max + 2 => Err(ProtocolError::CountTooLong),
        None => Ok(None),
    }
}

/// A count as Redis reads it: optional `-`, then decimal digits only.
fn parse_count(digits: &[u8]) -> Option<i64> {
    let (negative, digits) = match digits.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, digits),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut n: i64 = 0;
    for d in digits {
        n = n.checked_mul(10)?.checked_add(i64::from(d - b'0'))?;
    }
    Some(if negative { -n } else { n })
}

fn scan_multibulk(buf: &[u8]) -> Result<Scan, ProtocolError> {
    let Some(end) = line_end(buf, 1, MAX_COUNT_LINE)? else {
        return Ok(Scan::Incomplete);
    };
    let count = parse_count(&buf[1..end]).ok_or(ProtocolError::MultibulkLength)?;
    let mut pos = end + 2;
    if count <= 0 {
        // `*0` and `*-1` are nothing to run.
        return Ok(Scan::Skip(pos));
    }
    let count = usize::try_from(count).map_err(|_| ProtocolError::MultibulkLength)?;
    if count > MAX_ARGS {
        return Err(ProtocolError::MultibulkLength);
    }
    // Grows with the arguments that arrived, not with the count the client wrote.
    let mut args = Vec::new();
    for _ in 0..count {
        let Some(&first) = buf.get(pos) else {
            return Ok(Scan::Incomplete);
        };
        if first != b'$' {
            return Err(ProtocolError::ExpectedBulk(printable(first)));
        }
        let Some(end) = line_end(buf, pos + 1, MAX_COUNT_LINE)? else {
            return Ok(Scan::Incomplete);
        };
        let len = parse_count(&buf[pos + 1..end])
            .and_then(|n| usize::try_from(n).ok())
            .filter(|&n| n <= MAX_BULK)
            .ok_or(ProtocolError::BulkLength)?;
        let start = end + 2;
        let stop = start + len;
        if buf.len() < stop + 2 {
            return Ok(Scan::Incomplete);
        }
        if &buf[stop..stop + 2] != b"\r\n" {
            return Err(ProtocolError::ExpectedCrlf);
        }
        args.push(start..stop);
        pos = stop + 2;
    }
    Ok(Scan::Multibulk(args, pos))
}

/// An inline request: one line ending in `\n` (a `\r` before it is dropped), split into
/// arguments.
fn scan_inline(buf: &[u8]) -> Result<Scan, ProtocolError> {
    let window = &buf[..buf.len().min(MAX_INLINE + 1)];
    let Some(newline) = window.iter().position(|&b| b == b'\n') else {
        if window.len() > MAX_INLINE {
            return Err(ProtocolError::InlineTooBig);
        }
        return Ok(Scan::Incomplete);
    };
    let mut line = &buf[..newline];
    if let Some(stripped) = line.strip_suffix(b"\r") {
        line = stripped;
    }
    let args = split_args(line)?;
    if args.is_empty() {
        return Ok(Scan::Skip(newline + 1));
    }
    Ok(Scan::Inline(args, newline + 1))
}

/// Splits a line as redis-cli and Redis' inline parser do: arguments separated by
/// whitespace; `"…"` with the escapes `\n \r \t \b \a \\ \" \xHH`, `'…'` with `\'`; a closing
/// quote must be followed by whitespace or the end.
fn split_args(line: &[u8]) -> Result<Vec<Vec<u8>>, ProtocolError> {
    let mut args = Vec::new();
    let mut i = 0;
    loop {
        while line.get(i).is_some_and(|b| b.is_ascii_whitespace()) {
            i += 1;
        }
        let Some(&first) = line.get(i) else {
            return Ok(args);
        };
        if args.len() == MAX_ARGS {
            return Err(ProtocolError::MultibulkLength);
        }
        let mut arg = Vec::new();
        match first {
            b'"' => {
                i += 1;
                loop {
                    match line.get(i) {
                        None => return Err(ProtocolError::UnbalancedQuotes),
                        Some(b'\\')
                            if i + 3 < line.len()
                                && line[i + 1] == b'x'
                                && line[i + 2].is_ascii_hexdigit()
                                && line[i + 3].is_ascii_hexdigit() =>
                        {
                            arg.push(hex(line[i + 2]) * 16 + hex(line[i + 3]));
                            i += 4;
                        }
                        Some(b'\\') if i + 1 < line.len() => {
                            arg.push(match line[i + 1] {
                                b'n' => b'\n',
                                b'r' => b'\r',
                                b't' => b'\t',
                                b'b' => 0x08,
                                b'a' => 0x07,
                                other => other,
                            });
                            i += 2;
                        }
                        Some(b'"') => {
                            i += 1;
                            break;
                        }
                        Some(&b) => {
                            arg.push(b);
                            i += 1;
                        }
                    }
                }
                if line.get(i).is_some_and(|b| !b.is_ascii_whitespace()) {
                    return Err(ProtocolError::UnbalancedQuotes);
                }
            }
            b'\'' => {
                i += 1;
                loop {
                    match line.get(i) {
                        None => return Err(ProtocolError::UnbalancedQuotes),
                        Some(b'\\') if line.get(i + 1) == Some(&b'\'') => {
                            arg.push(b'\'');
                            i += 2;
                        }
                        Some(b'\'') => {
                            i += 1;
                            break;
                        }
                        Some(&b) => {
                            arg.push(b);
                            i += 1;
                        }
                    }
                }
                if line.get(i).is_some_and(|b| !b.is_ascii_whitespace()) {
                    return Err(ProtocolError::UnbalancedQuotes);
                }
            }
            _ => {
                while let Some(&b) = line.get(i).filter(|b| !b.is_ascii_whitespace()) {
                    arg.push(b);
                    i += 1;
                }
            }
        }
        args.push(arg);
    }
}

/// The value of a hex digit (callers check `is_ascii_hexdigit` first).
fn hex(digit: u8) -> u8 {
    char::from(digit).to_digit(16).map_or(0, |d| d as u8)
}

/// A byte as it may appear in an error message.
fn printable(b: u8) -> char {
    if b.is_ascii_graphic() || b == b' ' {
        char::from(b)
    } else {
        '?'
    }
}

/// The protocol a connection speaks: RESP2 until `HELLO 3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    Resp2,
    Resp3,
}

/// A reply, encoded per [`Protocol`] by [`Reply::encode`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Reply {
    /// `+OK`
    Ok,
    /// A status line such as `+PONG` or `+string`.
    Simple(Cow<'static, str>),
    /// An error line; the text starts with its code (`ERR …`, `NOAUTH …`).
    Error(Cow<'static, str>),
    Integer(i64),
    Bulk(Bytes),
    /// RESP2 `$-1`, RESP3 `_`.
    Null,
    Array(Vec<Reply>),
    /// RESP3 `~`; an array in RESP2.
    Set(Vec<Reply>),
    /// RESP3 `%`; a flat array of keys and values in RESP2.
    Map(Vec<(Reply, Reply)>),
}

impl Reply {
    pub(crate) fn error(text: impl Into<Cow<'static, str>>) -> Reply {
        Reply::Error(text.into())
    }

    pub(crate) fn simple(text: &'static str) -> Reply {
        Reply::Simple(Cow::Borrowed(text))
    }

    pub(crate) fn bulk(text: impl Into<Bytes>) -> Reply {
        Reply::Bulk(text.into())
    }

    pub(crate) fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }

    pub(crate) fn encode(&self, protocol: Protocol, out: &mut BytesMut) {
        match self {
            Reply::Ok => out.put_slice(b"+OK\r\n"),
            Reply::Simple(text) => line(out, b'+', text),
            Reply::Error(text) => line(out, b'-', text),
            Reply::Integer(n) => header(out, b':', *n),
            Reply::Bulk(bytes) => {
                header(out, b'$', bytes.len() as i64);
                out.put_slice(bytes);
                out.put_slice(b"\r\n");
            }
            Reply::Null => match protocol {
                Protocol::Resp2 => out.put_slice(b"$-1\r\n"),
                Protocol::Resp3 => out.put_slice(b"_\r\n"),
            },
            Reply::Array(items) => {
                header(out, b'*', items.len() as i64);
                items.iter().for_each(|r| r.encode(protocol, out));
            }
            Reply::Set(items) => {
                let kind = if protocol == Protocol::Resp3 {
                    b'~'
                } else {
                    b'*'
                };
                header(out, kind, items.len() as i64);
                items.iter().for_each(|r| r.encode(protocol, out));
            }
            Reply::Map(pairs) => {
                match protocol {
                    Protocol::Resp3 => header(out, b'%', pairs.len() as i64),
                    Protocol::Resp2 => header(out, b'*', 2 * pairs.len() as i64),
                }
                for (k, v) in pairs {
                    k.encode(protocol, out);
                    v.encode(protocol, out);
                }
            }
        }
    }
}

/// `<kind><n>\r\n`
fn header(out: &mut BytesMut, kind: u8, n: i64) {
    out.put_u8(kind);
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = n.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if n < 0 {
        out.put_u8(b'-');
    }
    out.put_slice(&digits[at..]);
    out.put_slice(b"\r\n");
}

/// A status or error line: a CR or LF in the text (which may quote the client's input)
/// would end the line early and desynchronise the client, so they become spaces.
fn line(out: &mut BytesMut, kind: u8, text: &str) {
    out.put_u8(kind);
    for b in text.bytes() {
        out.put_u8(if b == b'\r' || b == b'\n' { b' ' } else { b });
    }
    out.put_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_one(input: &[u8]) -> Result<Option<Vec<Vec<u8>>>, ProtocolError> {
        let mut buf = BytesMut::from(input);
        Ok(parse(&mut buf)?.map(|r| r.args.iter().map(|a| a.to_vec()).collect()))
    }

    fn args(list: &[&str]) -> Option<Vec<Vec<u8>>> {
        Some(list.iter().map(|s| s.as_bytes().to_vec()).collect())
    }

    #[test]
    fn multibulk_requests_parse_and_wait_for_the_rest() {
        let full = b"*2\r\n$3\r\nGET\r\n$4\r\nk\r\nx\r\n";
        assert_eq!(parse_one(full), Ok(args(&["GET", "k\r\nx"])));
        // Every prefix is incomplete, never an error.
        for cut in 0..full.len() {
            assert_eq!(parse_one(&full[..cut]), Ok(None), "prefix of {cut} bytes");
        }
        // Pipelined: one at a time, the rest stays in the buffer.
        let mut buf = BytesMut::from(&b"*1\r\n$4\r\nPING\r\n*0\r\n*1\r\n$4\r\nQUIT\r\n"[..]);
        assert_eq!(parse(&mut buf).unwrap().unwrap().args, ["PING"]);
        assert_eq!(parse(&mut buf).unwrap().unwrap().args, ["QUIT"]);
        assert!(buf.is_empty());
        assert_eq!(parse_one(b"*0\r\n"), Ok(None));
        assert_eq!(parse_one(b"*-1\r\n"), Ok(None));
        assert_eq!(parse_one(b"*1\r\n$0\r\n\r\n"), Ok(args(&[""])));
    }

    #[test]
    fn lengths_past_the_bounds_are_refused_before_anything_is_buffered() {
        use ProtocolError::*;
        for (input, err) in [
            (&b"*999999999999\r\n"[..], MultibulkLength),
            (b"*1025\r\n", MultibulkLength),
            (b"*99999999999999999999999\r\n", MultibulkLength),
            (b"*1\r\n$999999999999\r\n", BulkLength),
            (b"*1\r\n$65537\r\n", BulkLength),
            (b"*1\r\n$-5\r\n", BulkLength),
            (b"*1\r\n$1x\r\n", BulkLength),
            (b"*x\r\n", MultibulkLength),
            (b"*\r\n", MultibulkLength),
            (b"*1\r\n:5\r\n", ExpectedBulk(':')),
            (b"*1\r\n\x00", ExpectedBulk('?')),
            (b"*1\r\n$1\r\nab\r\n", ExpectedCrlf),
            (b"*11111111111111111111111111111111111111", CountTooLong),
            (b"\"unterminated\r\n", UnbalancedQuotes),
            (b"\"a\"b\r\n", UnbalancedQuotes),
        ] {
            assert_eq!(
                parse_one(input),
                Err(err),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        // A request that keeps arriving without end is cut off at MAX_REQUEST.
        let mut buf = BytesMut::from(&b"*1024\r\n"[..]);
        let chunk = format!("${MAX_BULK}\r\n{}\r\n", "a".repeat(MAX_BULK));
        let mut result = Ok(None);
        for _ in 0..=MAX_REQUEST / MAX_BULK {
            buf.extend_from_slice(chunk.as_bytes());
            result = parse(&mut buf);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(RequestTooLarge));
        // An inline line without end, likewise.
        let mut buf = BytesMut::from(&vec![b'a'; MAX_INLINE + 1][..]);
        assert_eq!(parse(&mut buf), Err(InlineTooBig));
    }

    #[test]
    fn inline_requests_split_like_redis_cli() {
        assert_eq!(parse_one(b"PING\r\n"), Ok(args(&["PING"])));
        assert_eq!(parse_one(b"  get   k \n"), Ok(args(&["get", "k"])));
        assert_eq!(
            parse_one(b"ECHO \"a b\\x41\\n\" 'it\\'s'\r\n"),
            Ok(args(&["ECHO", "a bA\n", "it's"]))
        );
        assert_eq!(parse_one(b"PING"), Ok(None), "no newline yet");
        assert_eq!(parse_one(b"\r\n"), Ok(None), "a blank line is skipped");
        let mut buf = BytesMut::from(&b"\r\n\nPING\n"[..]);
        assert_eq!(parse(&mut buf).unwrap().unwrap().args, ["PING"]);
    }

    #[test]
    fn replies_encode_in_both_protocols() {
        let encode = |reply: &Reply, protocol| {
            let mut out = BytesMut::new();
            reply.encode(protocol, &mut out);
            String::from_utf8(out.to_vec()).unwrap()
        };
        use Protocol::*;
        assert_eq!(encode(&Reply::Ok, Resp2), "+OK\r\n");
        assert_eq!(encode(&Reply::Integer(-2), Resp2), ":-2\r\n");
        assert_eq!(
            encode(&Reply::Integer(i64::MIN), Resp2),
            ":-9223372036854775808\r\n"
        );
        assert_eq!(encode(&Reply::Null, Resp2), "$-1\r\n");
        assert_eq!(encode(&Reply::Null, Resp3), "_\r\n");
        assert_eq!(encode(&Reply::error("ERR a\r\nb"), Resp2), "-ERR a  b\r\n");
        let set = Reply::Set(vec![Reply::bulk("a")]);
        assert_eq!(encode(&set, Resp2), "*1\r\n$1\r\na\r\n");
        assert_eq!(encode(&set, Resp3), "~1\r\n$1\r\na\r\n");
        let map = Reply::Map(vec![(Reply::bulk("proto"), Reply::Integer(3))]);
        assert_eq!(encode(&map, Resp2), "*2\r\n$5\r\nproto\r\n:3\r\n");
        assert_eq!(encode(&map, Resp3), "%1\r\n$5\r\nproto\r\n:3\r\n");
    }
}
