//! RFC 5322 / MIME parsing of messages, without copying (placeholder).
