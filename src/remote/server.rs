//! The engine's side of the control socket: accepts connections from the
//! engine's own user and holds a conversation with each (`conversation`):
//! an overview of the run and its events, their commands passed to the
//! engine in order. A misbehaving client gets an error line or a closed
//! connection; the engine never waits on a client.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::conversation::{Context, Ended, Out, WRITE_STALL, converse};
use super::live_cache::LiveCache;
use super::path::{BIND_SUFFIX, Placement, choose};
use super::peer::{Peer, admit, owner_uid};
use super::protocol::ServerMsg;
use crate::engine::handle::EngineHandle;

/// A serving control socket. Dropping it stops accepting and removes the
/// socket file (and its pointer); connections end with the engine.
pub struct Server {
    placement: Placement,
    accept: JoinHandle<()>,
    following: JoinHandle<()>,
    holders: watch::Receiver<usize>,
}

impl Server {
    /// Binds the socket for `state_dir`, whose `LOCK` this process holds.
    pub async fn start(state_dir: &Path, handle: EngineHandle) -> Result<Server, String> {
        let runtime = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from);
        let placement = choose(state_dir, runtime.as_deref())?;
        let listener = bind(&placement).await?;
        if let Some(pointer) = &placement.pointer {
            crate::store::private::write_file(
                pointer,
                placement.socket.to_string_lossy().as_bytes(),
            )
            .map_err(|e| format!("cannot write {}: {e}", pointer.display()))?;
        } else {
            // A pointer left by an engine that ran with another XDG_RUNTIME_DIR.
            let _ = std::fs::remove_file(absolute_pointer(state_dir));
        }
        let (holders_tx, holders) = watch::channel(0usize);
        let (live, following) = LiveCache::follow(&handle);
        // Where clients read the run: the folder's database, or the
        // PostgreSQL address (without its password).
        let store = match handle.reader().map(|r| r.location()) {
            Some(at) if at.starts_with("postgres://") => at,
            _ => crate::store::sqlite::db_path(&super::path::absolute(state_dir))
                .display()
                .to_string(),
        };
        let ctx = Arc::new(Context {
            handle,
            live,
            holders: Arc::new(holders_tx),
            store,
            stall: WRITE_STALL,
        });
        let accept = tokio::spawn(accept_loop(listener, ctx));
        tracing::debug!("control socket at {}", placement.socket.display());
        Ok(Server {
            placement,
            accept,
            following,
            holders,
        })
    }

    pub fn path(&self) -> &Path {
        &self.placement.socket
    }

    /// How many connected clients asked to keep a `--wait` engine up.
    pub fn holders(&self) -> watch::Receiver<usize> {
        self.holders.clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.accept.abort();
        self.following.abort();
        let _ = std::fs::remove_file(&self.placement.socket);
        if let Some(pointer) = &self.placement.pointer {
            let _ = std::fs::remove_file(pointer);
        }
    }
}

fn absolute_pointer(state_dir: &Path) -> PathBuf {
    super::path::absolute(state_dir).join(super::path::POINTER_NAME)
}

/// Binds under a temporary name, restricts it to the owner, then renames it
/// into place, so the socket is never reachable with a looser mode. A socket
/// file already there is stale: the caller holds the folder's lock, so no
/// live engine can be serving it (unless it answers, which is refused).
async fn bind(placement: &Placement) -> Result<UnixListener, String> {
    let path = &placement.socket;
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(format!(
                "another process already answers on {}\n  help: stop it, or remove the file if it is not a baton engine",
                path.display()
            ));
        }
        std::fs::remove_file(path)
            .map_err(|e| format!("cannot remove the stale socket {}: {e}", path.display()))?;
        tracing::info!("replaced a stale control socket at {}", path.display());
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(BIND_SUFFIX);
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let listener =
        UnixListener::bind(&tmp).map_err(|e| format!("cannot serve on {}: {e}", tmp.display()))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            format!("cannot set up {}: {e}", path.display())
        })?;
    Ok(listener)
}

async fn accept_loop(listener: UnixListener, ctx: Arc<Context>) {
    let owner = owner_uid();
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let ctx = ctx.clone();
                tokio::spawn(async move { serve(stream, &ctx, owner).await });
            }
            Err(e) => {
                // Out of descriptors, usually; back off rather than spin.
                tracing::warn!("control socket: cannot accept a connection: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// One connection: who it is, then the conversation.
async fn serve(stream: UnixStream, ctx: &Context, owner: u32) {
    let peer = match Peer::of(&stream) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!("control socket: cannot tell who connected ({e}); closing");
            return;
        }
    };
    let (reader, writer) = stream.into_split();
    let mut out = Out::new(writer, ctx.stall);
    if let Err(why) = admit(peer, owner) {
        tracing::warn!("control socket: {why}");
        let _ = out
            .send(&ServerMsg::Error {
                id: None,
                message: why,
            })
            .await;
        return;
    }
    match converse(reader, &mut out, ctx, peer).await {
        Ok(()) => {}
        Err(e @ Ended::Stalled(_)) => {
            tracing::warn!(
                "control socket: dropped the client of pid {}: {e}",
                peer.pid.map_or("?".to_string(), |p| p.to_string())
            );
            return;
        }
        Err(e) => {
            tracing::debug!(
                "control socket: connection from pid {:?} ended: {e}",
                peer.pid
            );
        }
    }
    out.shutdown().await;
}
