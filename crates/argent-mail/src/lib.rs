//! Real email for argent (issue #14).
//!
//! - [`outbound`]: building a message from an outbox row (a stable `Message-ID` chosen
//!   before sending, `In-Reply-To`/`References` when it answers a customer,
//!   `List-Unsubscribe`), and the SMTP adapter (lettre) with per-domain rate limits and
//!   retries on temporary failures ([`smtp`]).
//! - [`inbound`]: parsing a raw RFC 822 message (mail-parser) into what argent needs (the
//!   new text apart from quoted history and signatures, attachments as metadata only,
//!   threading headers, the `Authentication-Results` verdict), recognising auto-replies and
//!   bounces without a model.
//! - [`imap`]: the IMAP adapter that fetches new messages of a mailbox exactly once (UID +
//!   UIDVALIDITY checkpoint); [`raw`]: what receiving needs from a raw message before it is
//!   parsed (its Message-ID, its hash).
//!
//! Must not know: the database, the agent, the policy. The store records what this crate
//! produces; the agent and the worker decide what to do with it.

pub mod imap;
pub mod inbound;
pub mod outbound;
pub mod raw;
pub mod smtp;
