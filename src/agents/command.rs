//! The `command` agent: one child process per attempt, JSON on stdin and stdout.

use std::sync::Arc;

use super::{Agent, AgentRequest, BoxFuture, CallContext, CallResult};
use crate::spec::model::CommandSpec;

pub struct CommandAgent {
    spec: Arc<CommandSpec>,
}

impl CommandAgent {
    pub fn new(spec: CommandSpec) -> CommandAgent {
        CommandAgent {
            spec: Arc::new(spec),
        }
    }
}

impl Agent for CommandAgent {
    fn model(&self) -> Option<&str> {
        self.spec.model.as_deref()
    }

    fn call(&self, _request: Arc<AgentRequest>, _ctx: CallContext) -> BoxFuture<CallResult> {
        // Filled in by the command-agent work.
        Box::pin(async {
            CallResult::failed(
                crate::engine::event::ErrorClass::Spawn,
                "command agent missing",
            )
        })
    }
}
