//! The process's open-files limit, and the HTTP connection limit it allows: every
//! connection is a file descriptor, and so is every log segment, component file and
//! store file that choreo opens while it runs.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Descriptors kept for everything but HTTP connections: the broker's store and log
/// segments, the deploy folder's watcher and the components read from it, the compiled
/// artifacts' cache, and the runtime's own.
pub(crate) const KEPT_FOR_THE_REST: u64 = 512;

/// The fewest connections a default limit allows, however tight the open-files limit.
const MIN_DEFAULT_CONNECTIONS: usize = 64;

/// Raises the soft open-files limit to the hard one, as servers commonly do, and
/// returns the soft limit in force: `None` for no limit.
pub(crate) fn raise_limit() -> Option<u64> {
    let limit = getrlimit(Resource::Nofile);
    // The soft limit is at most the hard one: if it differs, it is lower.
    if limit.current.is_some() && limit.current != limit.maximum {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            return limit.maximum;
        }
    }
    limit.current
}

/// The connection limit to serve with: `asked` when the open-files limit leaves room
/// for it beside [`KEPT_FOR_THE_REST`], else an error naming both. Without `asked`,
/// `default`, lowered to the room there is (to no fewer than a few dozen).
pub(crate) fn max_connections(
    asked: Option<usize>,
    default: usize,
    open_files: Option<u64>,
) -> anyhow::Result<usize> {
    let room = open_files.map_or(usize::MAX, |limit| {
        usize::try_from(limit.saturating_sub(KEPT_FOR_THE_REST)).unwrap_or(usize::MAX)
    });
    match asked {
        Some(asked) if asked > room => anyhow::bail!(
            "max_connections is {asked}, but the open-files limit ({}) leaves room for \
             {room} connections beside the {KEPT_FOR_THE_REST} descriptors kept for the \
             store and deploys: raise the limit (ulimit -n, or LimitNOFILE= under \
             systemd) or lower max_connections",
            open_files.unwrap_or_default()
        ),
        Some(asked) => Ok(asked),
        None => Ok(default.min(room).max(MIN_DEFAULT_CONNECTIONS)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_what_was_asked_when_the_open_files_limit_has_room() {
        assert_eq!(max_connections(Some(100), 10_000, Some(1024)).unwrap(), 100);
        assert_eq!(max_connections(Some(50_000), 10_000, None).unwrap(), 50_000);
        let err = max_connections(Some(1000), 10_000, Some(1024)).unwrap_err();
        let message = format!("{err:#}");
        assert!(
            message.contains("1024") && message.contains("512 connections"),
            "{message}"
        );
    }

    #[test]
    fn the_default_shrinks_to_the_room_the_open_files_limit_leaves() {
        assert_eq!(
            max_connections(None, 10_000, Some(1 << 20)).unwrap(),
            10_000
        );
        assert_eq!(max_connections(None, 10_000, Some(1024)).unwrap(), 512);
        assert_eq!(max_connections(None, 10_000, Some(256)).unwrap(), 64);
        assert_eq!(max_connections(None, 10_000, None).unwrap(), 10_000);
    }

    #[test]
    fn raising_the_limit_keeps_it_readable() {
        let before = getrlimit(Resource::Nofile);
        let raised = raise_limit();
        assert_eq!(
            raised, before.maximum,
            "the soft limit is raised to the hard one"
        );
        assert_eq!(getrlimit(Resource::Nofile).current, before.maximum);
    }
}
