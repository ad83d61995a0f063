//! The agent: builds the prompt, calls a model, runs tools, streams the answer back.

pub mod history;
pub mod models;
pub mod prompt;
pub mod providers;
pub mod router;
pub mod run;
pub mod tools;
pub mod types;

pub use run::{Agent, AgentEvent, Outcome, RunRequest, Status};
