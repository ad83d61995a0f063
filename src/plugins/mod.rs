//! Drop-in tool plugins: a folder under `$SKYNET_HOME/tools/` with a `tool.toml` and a
//! program in any language becomes a tool the model can call. No restart needed: the
//! folder is read again before each message.

mod script;

pub use script::PluginSet;
