//! What the deny list names ([`DenyKind`]) and what one eviction pass removed
//! ([`EvictionReport`]), on either backend.

/// What a deny entry names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyKind {
    /// One access token, by `jti`.
    Token,
    /// A whole session, by `sid`.
    Session,
}

impl DenyKind {
    pub(crate) fn tag(self) -> u8 {
        match self {
            DenyKind::Token => b'j',
            DenyKind::Session => b's',
        }
    }
}

/// How much one eviction pass removed, and when the next deny entry expires.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct EvictionReport {
    /// Deny entries whose last token is past `exp + leeway`.
    pub deny_removed: u64,
    /// Deny-list bucket trees dropped.
    pub deny_buckets_dropped: u64,
    pub sessions_removed: u64,
    /// Tenant invitations ended long enough ago to leave their tenant's list.
    pub invitations_removed: u64,
    /// Mails (and their links) whose link expired.
    pub mails_removed: u64,
    /// Change-log records past the longest access-token life plus leeway.
    pub changes_removed: u64,
    /// The earliest expiry (`exp + leeway`) still on the deny list, if any.
    pub next_deny_expiry: Option<u64>,
}
