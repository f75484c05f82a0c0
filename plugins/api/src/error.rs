//! What a plugin's calls return: one error, a message the engine shows with the plugin's
//! name.

/// An error a plugin reports to the engine; the engine shows it with the plugin's name.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginError(pub String);

impl std::fmt::Display for PluginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PluginError {}

impl From<String> for PluginError {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl From<&str> for PluginError {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

pub type Result<T, E = PluginError> = std::result::Result<T, E>;
