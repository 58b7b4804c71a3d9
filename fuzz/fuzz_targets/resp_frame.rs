//! The RESP listener's request parser (`resp::frame`), the first thing a Redis client, or
//! anyone who can reach `resp.listen`, talks to.
//!
//! The first byte picks how many bytes each simulated read delivers (1 to 64); the rest is
//! the stream. The same stream parsed in one read must give the same requests and the same
//! error: where reads split the input never changes what it means. Every request must be
//! within the parser's bounds.
#![no_main]

use gatehouse::resp::frame::{MAX_ARGS, MAX_BULK, MAX_INLINE, parse_stream};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(first % 64) + 1;
    let (requests, error) = parse_stream(stream, chunk);
    for request in &requests {
        assert!(!request.args.is_empty(), "an empty request is skipped, not run");
        assert!(request.args.len() <= MAX_ARGS, "{} arguments", request.args.len());
        for arg in &request.args {
            assert!(arg.len() <= MAX_BULK.max(MAX_INLINE), "an argument of {} bytes", arg.len());
        }
    }
    let whole = parse_stream(stream, stream.len());
    assert_eq!((&requests, &error), (&whole.0, &whole.1), "split reads changed the parse");
});
