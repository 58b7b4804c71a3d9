//! The embedded store's on-disk format (`store::embedded::layout`, GD-0013): the bytes of a
//! redb file are read back by these decoders, and a damaged or hand-edited file must give an
//! error, never a panic.
//!
//! The first byte is the length of the key (up to 64); then the stored key, then the stored
//! value. The entry is decoded completely (key, kind, expiry, and a session record or a set's
//! members). A key that is text must also come back unchanged through its stored form.
#![no_main]

use gatehouse::store::embedded::layout::{decode_entry, decode_key, key};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let split = usize::from(first % 65).min(rest.len());
    let (stored_key, stored_value) = rest.split_at(split);
    let _ = decode_entry(stored_key, stored_value);
    if let Ok(text) = std::str::from_utf8(stored_key) {
        assert_eq!(decode_key(&key(text)).as_deref(), Ok(text), "a key changed on disk");
    }
});
