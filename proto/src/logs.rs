//! Log delivery: an edge writes each closed spool segment, split by account and kind, with
//! `PUT /internal/logs?account=A&object=O` (gzip body); the origin stores it in the
//! account's [`crate::meta::LOGS_CONTAINER`]. The lines themselves are the customer's format
//! (documented with the edge), not a contract between processes.

/// Query parameter naming the account.
pub const PARAM_ACCOUNT: &str = "account";
/// Query parameter naming the object inside the logs container.
pub const PARAM_OBJECT: &str = "object";
/// Content type of a delivered log object.
pub const CONTENT_TYPE: &str = "application/gzip";

/// What a delivered log object holds; its name starts with the kind (`access/...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogKind {
    /// Access log lines.
    Access,
    /// Billing lines.
    Billing,
}

impl LogKind {
    /// Every kind.
    pub const ALL: [LogKind; 2] = [LogKind::Access, LogKind::Billing];

    /// The name (`access`, `billing`), the first segment of the object name.
    pub fn as_str(self) -> &'static str {
        match self {
            LogKind::Access => "access",
            LogKind::Billing => "billing",
        }
    }

    /// The kind of a delivered object name, if it starts with `<kind>/`.
    pub fn of_object(name: &str) -> Option<LogKind> {
        let (first, _) = name.split_once('/')?;
        LogKind::ALL.into_iter().find(|k| k.as_str() == first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_of_object_name() {
        assert_eq!(
            LogKind::of_object("access/2026/01/31/12/e1-7.jsonl.gz"),
            Some(LogKind::Access)
        );
        assert_eq!(LogKind::of_object("billing/x"), Some(LogKind::Billing));
        assert_eq!(LogKind::of_object("accessx/y"), None);
        assert_eq!(LogKind::of_object("access"), None);
    }
}
