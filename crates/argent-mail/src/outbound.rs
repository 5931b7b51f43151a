//! Outbound mail: building messages and delivering them over SMTP (see the crate docs).
