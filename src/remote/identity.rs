//! Who a command over the control socket is from: the operating system's
//! word, not the client's. The kernel tells the peer's uid (`SO_PEERCRED`,
//! taken when it connected); its account name comes from the password
//! database. The name a client puts in `by` is not used; the SSH address
//! it gives is kept as what the client claims. Every text field is bounded
//! first (see `engine::bounds`), so an over-long one is refused whatever it is.

use super::peer::Peer;
use crate::engine::bounds;
use crate::engine::event::{Actor, Command};

/// The command as the engine should record it, or why it is refused.
pub fn stamp(mut command: Command, peer: Peer) -> Result<Command, String> {
    bounds::check(&command).map_err(|r| r.0)?;
    let by = match &mut command {
        Command::Act { by, .. }
        | Command::RaiseBudget { by, .. }
        | Command::Pause { by }
        | Command::Resume { by } => by,
        Command::Shutdown => return Ok(command),
    };
    *by = Actor::peer(peer.uid, by.ssh_client.take());
    Ok(command)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::event::Action;

    #[test]
    fn the_peers_uid_and_name_are_recorded_and_the_claimed_name_is_not() {
        let sent = Command::Act {
            task: "t1".into(),
            action: Action::Approve,
            phase: None,
            note: None,
            by: Actor {
                user: "the-ceo".into(),
                ssh_client: Some("10.0.0.9".into()),
            },
        };
        let peer = Peer {
            uid: 0,
            pid: Some(7),
        };
        let Command::Act { by, .. } = stamp(sent, peer).unwrap() else {
            panic!("still an act")
        };
        assert_eq!(by.user.uid, Some(0));
        assert_eq!(by.user.name, "root");
        assert_eq!(by.ssh_client.as_deref(), Some("10.0.0.9"));
        assert_eq!(
            by.to_string(),
            "root (ssh from 10.0.0.9, as its client claims)"
        );
    }

    #[test]
    fn an_over_long_field_is_refused_before_anything_else() {
        let sent = Command::Pause {
            by: Actor {
                user: "x".repeat(100_000).into(),
                ssh_client: None,
            },
        };
        let why = stamp(sent, Peer { uid: 0, pid: None }).unwrap_err();
        assert!(why.contains("user name is longer than 1000"), "{why}");
    }
}
