//! The one error type of Tempered (`tempered-nn`, and `tempered-core` above it), in
//! candle's style: one enum, sources kept (so [`std::error::Error::source`] walks the
//! chain), and [`Context`] to say what was being done when something deeper failed ("word-CNN, clean epoch 3, batch 17: shape mismatch …").

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A pipeline file problem, already formatted as `file:line:col: message`.
    #[error("{0}")]
    Config(String),
    /// A setting or input a component refuses, before any work: the message names it.
    #[error(transparent)]
    Invalid(#[from] Invalid),
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
    /// What was being done when `source` failed.
    #[error("{context}: {source}")]
    Context {
        context: String,
        #[source]
        source: Box<Error>,
    },
    /// A library without a variant of its own (safetensors, tokenizers, polars) failed at
    /// `context`.
    #[error("{context}: {source}")]
    External {
        context: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Training diverged (a non-finite loss): the message names the phase, epoch and batch;
    /// `section` is the pipeline table whose `lr` to lower (`train`, `harden`), so the
    /// command line can point at its line.
    #[error("{msg}")]
    Diverged { section: &'static str, msg: String },
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// Something that cannot happen did: a bug in Tempered, not in the input.
    #[error("internal error (a bug in Tempered; please report it): {0}")]
    Internal(&'static str),
    #[error("{0}")]
    Msg(String),
}

/// A value a check refuses (a setting, a file's form, a plugin's query): the message says
/// what and why, and the caller adds where (the pipeline key, the file, the plugin).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl Invalid {
    pub fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }

    /// The message alone, for callers that place it (e.g. under a pipeline key).
    pub fn into_message(self) -> String {
        self.0
    }

    /// `context: message`.
    pub fn context(self, context: impl std::fmt::Display) -> Self {
        Self(format!("{context}: {}", self.0))
    }

    /// Whether the message contains `s` (for tests and callers that branch on it).
    pub fn contains(&self, s: &str) -> bool {
        self.0.contains(s)
    }
}

impl From<String> for Invalid {
    fn from(msg: String) -> Self {
        Self(msg)
    }
}

impl From<Invalid> for String {
    fn from(e: Invalid) -> Self {
        e.0
    }
}

impl From<&str> for Invalid {
    fn from(msg: &str) -> Self {
        Self(msg.to_owned())
    }
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

    pub fn invalid(msg: impl Into<String>) -> Self {
        Self::Invalid(Invalid(msg.into()))
    }

    /// A foreign library's error, kept as the source, with what was being done.
    pub fn external(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self::External { context: context.into(), source: source.into() }
    }

    /// The `section` of a [`Error::Diverged`] inside this error's chain of context.
    pub fn diverged(&self) -> Option<&'static str> {
        match self {
            Self::Diverged { section, .. } => Some(section),
            Self::Context { source, .. } => source.diverged(),
            _ => None,
        }
    }

    pub fn msg(msg: impl Into<String>) -> Self {
        Self::Msg(msg.into())
    }

    /// This error with `context` in front; the error itself stays the source.
    pub fn context(self, context: impl Into<String>) -> Self {
        Self::Context { context: context.into(), source: Box::new(self) }
    }
}

/// Context on any result whose error converts into [`Error`] (candle's, ours),
/// like candle's own `Context`: the original error is kept as the source.
pub trait Context<T> {
    fn context(self, context: impl Into<String>) -> Result<T>;
    /// [`Context::context`], with the message built only on failure.
    fn with_context<C: Into<String>>(self, context: impl FnOnce() -> C) -> Result<T>;
}

impl<T, E: Into<Error>> Context<T> for std::result::Result<T, E> {
    fn context(self, context: impl Into<String>) -> Result<T> {
        self.map_err(|e| e.into().context(context))
    }

    fn with_context<C: Into<String>>(self, context: impl FnOnce() -> C) -> Result<T> {
        self.map_err(|e| e.into().context(context()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn context_names_what_was_done_and_keeps_the_source() {
        let shape: candle_core::Result<()> = Err(candle_core::Error::Msg("shape mismatch".into()));
        let e = shape.context("word-CNN, clean epoch 3, batch 17").unwrap_err();
        assert_eq!(e.to_string(), "word-CNN, clean epoch 3, batch 17: shape mismatch");
        let source = e.source().expect("the candle error is the source");
        assert_eq!(source.to_string(), "shape mismatch");
        let inner = source.downcast_ref::<Box<Error>>().map(|b| &**b);
        assert!(matches!(inner, Some(Error::Candle(_))), "{source:?}");
    }

    #[test]
    fn io_errors_keep_their_source() {
        let e = Error::io("x.csv", std::io::Error::other("gone")).context("reading data");
        assert_eq!(e.to_string(), "reading data: x.csv: gone");
        let io = e.source().and_then(|s| s.source()).expect("the io error");
        assert_eq!(io.to_string(), "gone");
    }
}
