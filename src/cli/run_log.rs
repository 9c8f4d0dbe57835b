//! The run log for the commands that open an engine: started before the
//! engine runs, finished after it stops. A log that cannot be kept is a
//! warning, never a reason to stop the work.

use std::path::Path;

use baton::engine::{Actor, Engine, FollowStart};
use baton::report::mask::Masker;
use baton::run_log_writer::{self, RunLogWriter, Session};

/// Starts the log's section over `start`, the run as it is before the
/// engine goes on.
pub fn start(
    engine: &Engine,
    start: FollowStart,
    session: Session,
    pipeline_file: Option<&Path>,
) -> Option<RunLogWriter> {
    let path = run_log_writer::path_in(Path::new(&start.overview.state_dir));
    // Without its masks the log would copy what they hide: keep no log then.
    let masker = match Masker::new(&engine.pipeline().mask) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("warning: no run log: a `mask` pattern does not compile: {e}");
            return None;
        }
    };
    match RunLogWriter::start(
        &engine.handle(),
        start,
        masker,
        session,
        pipeline_file,
        &Actor::current(),
    ) {
        Ok(w) => Some(w),
        Err(e) => {
            eprintln!("warning: no run log: cannot write {}: {e}", path.display());
            None
        }
    }
}

pub async fn finish(writer: Option<RunLogWriter>) {
    let Some(writer) = writer else { return };
    let path = writer.path().to_path_buf();
    if let Err(e) = writer.finish().await {
        eprintln!(
            "warning: the run log {} may be incomplete: {e}",
            path.display()
        );
    }
}
