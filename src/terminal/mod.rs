//! Running shell commands for the assistant: the safety checker every command line goes
//! through first, and the process plumbing (own process group, capped output) shared with
//! script plugins. PTY sessions will live here too.

mod parse;
pub mod paths;
pub mod process;
pub mod safety;

#[cfg(test)]
mod tests;
