//! Who is on the other end of a connection, and whether they may talk to
//! the engine: only processes of the user the engine runs as. The socket's
//! mode (0600) already keeps others out; this is the second lock on the door,
//! for sockets whose mode or folder was loosened by hand.

use tokio::net::UnixStream;

/// The kernel's word on a peer (SO_PEERCRED), taken when it connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub pid: Option<i32>,
}

impl Peer {
    pub fn of(stream: &UnixStream) -> std::io::Result<Peer> {
        let cred = stream.peer_cred()?;
        Ok(Peer {
            uid: cred.uid(),
            pid: cred.pid(),
        })
    }

    fn describe(&self) -> String {
        match self.pid {
            Some(pid) => format!("uid {} (pid {pid})", self.uid),
            None => format!("uid {}", self.uid),
        }
    }
}

/// The uid this engine runs as; peers must match it.
pub fn owner_uid() -> u32 {
    // SAFETY: geteuid has no failure mode and touches no memory.
    unsafe { libc::geteuid() }
}

/// Lets the owner in; anyone else gets the reason, for them and for the log.
pub fn admit(peer: Peer, owner: u32) -> Result<(), String> {
    if peer.uid == owner {
        Ok(())
    } else {
        Err(format!(
            "refused a connection from {}: only uid {owner}, which runs this engine, may use its control socket",
            peer.describe()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_owner_is_admitted() {
        let me = Peer {
            uid: 1000,
            pid: Some(42),
        };
        assert_eq!(admit(me, 1000), Ok(()));
        let other = Peer {
            uid: 65534,
            pid: Some(77),
        };
        let err = admit(other, 1000).unwrap_err();
        assert!(err.contains("uid 65534 (pid 77)"), "{err}");
        assert!(err.contains("only uid 1000"), "{err}");
        // Root is no exception: it runs its own engines.
        let root = Peer { uid: 0, pid: None };
        assert!(admit(root, 1000).is_err());
    }

    #[tokio::test]
    async fn a_socket_pair_reports_this_process() {
        let (a, _b) = UnixStream::pair().unwrap();
        let peer = Peer::of(&a).unwrap();
        assert_eq!(peer.uid, owner_uid());
        assert_eq!(peer.pid, Some(std::process::id() as i32));
        assert_eq!(admit(peer, owner_uid()), Ok(()));
    }
}
