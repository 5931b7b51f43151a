//! Inbound mail: parsing, classification and the IMAP reader (see the crate docs).
