//! The IMAP reader (see the crate docs).
