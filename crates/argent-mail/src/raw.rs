//! What receiving needs from a raw message before it is parsed (see the crate docs).
