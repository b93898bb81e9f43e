//! The open-file limit (RLIMIT_NOFILE): raised from its soft value to the
//! hard one at start, and read to size the HTTP connection cap, so viewers
//! can never take the descriptors that ingest and segment writes need.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// The soft and hard open-file limits; `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFiles {
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

/// The limits now.
pub fn current() -> OpenFiles {
    let Rlimit { current, maximum } = getrlimit(Resource::Nofile);
    OpenFiles {
        soft: current,
        hard: maximum,
    }
}

/// Raises the soft limit to the hard one (what a process may do on its own)
/// and returns the limits before and after. Failing leaves them as they were.
pub fn raise() -> (OpenFiles, std::io::Result<OpenFiles>) {
    let before = current();
    if before.soft == before.hard {
        return (before, Ok(before));
    }
    let raised = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: before.hard,
            maximum: before.hard,
        },
    )
    .map(|()| current())
    .map_err(std::io::Error::from);
    (before, raised)
}

/// The most HTTP connections the descriptor limit allows: half of the soft
/// limit, so the other half stays for RTMP connections, segment and playlist
/// files, the keyring and the listeners. Unlimited: `configured`.
pub fn http_connection_budget(configured: usize, limits: OpenFiles) -> usize {
    match limits.soft {
        Some(soft) => configured.min(usize::try_from(soft / 2).unwrap_or(usize::MAX)).max(1),
        None => configured,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_http_budget_leaves_half_the_descriptors() {
        let limits = |soft| OpenFiles { soft, hard: soft };
        assert_eq!(http_connection_budget(4096, limits(Some(1024))), 512);
        assert_eq!(http_connection_budget(100, limits(Some(1024))), 100);
        assert_eq!(http_connection_budget(4096, limits(None)), 4096);
        assert_eq!(http_connection_budget(4096, limits(Some(1))), 1);
    }

    #[test]
    fn raising_reaches_the_hard_limit() {
        let (before, after) = raise();
        let after = after.unwrap();
        assert_eq!(after.soft, before.hard);
        assert_eq!(after.hard, before.hard);
        assert_eq!(current(), after);
    }
}
