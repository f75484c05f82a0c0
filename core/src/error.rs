//! The one error type of tempered-core.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A pipeline file problem, already formatted as `file:line:col: message`.
    #[error("{0}")]
    Config(String),
    /// Bad data: `file: message`, the message naming the row and column where there is one.
    #[error("{}: {msg}", path.display())]
    Data { path: PathBuf, msg: String },
    /// A plugin that is missing, incompatible, failed or misbehaved.
    #[error("plugin `{plugin}`: {msg}")]
    Plugin { plugin: String, msg: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error(transparent)]
    Polars(#[from] polars::error::PolarsError),
    #[error("{0}")]
    Msg(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn data(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Self::Data { path: path.into(), msg: msg.into() }
    }

    pub fn plugin(plugin: impl Into<String>, msg: impl Into<String>) -> Self {
        Self::Plugin { plugin: plugin.into(), msg: msg.into() }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }

    pub fn msg(msg: impl Into<String>) -> Self {
        Self::Msg(msg.into())
    }
}
