//! Errors as one line of text, causes included.

/// `err` and each of its causes, joined by `: ` ("storage failed while writing to the
/// write-ahead log: No space left on device (os error 28)"), for messages that must name
/// the cause on their own: problem documents, and the reasons logged and kept by the
/// crates that hold errors rather than return them.
pub fn with_causes(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(next) = cause {
        text.push_str(": ");
        text.push_str(&next.to_string());
        cause = next.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("opening the store")]
    struct Opening(#[source] std::io::Error);

    #[test]
    fn every_cause_is_named_in_order() {
        let err = Opening(std::io::Error::other("disk on fire"));
        assert_eq!(with_causes(&err), "opening the store: disk on fire");
        assert_eq!(with_causes(&err.0), "disk on fire");
    }
}
