//! Error type shared by the whole library.

use std::path::PathBuf;

/// Everything that can go wrong while reading input, validating hyperparameters or computing
/// descriptors. Messages name the file, frame, line or field at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Malformed extended XYZ input.
    #[error("{path}:{line}: {message}")]
    Xyz {
        /// File being read (or `<memory>`).
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A hyperparameter or a combination of them is invalid (mirrors the original's checks).
    #[error("invalid hyperparameter: {0}")]
    Hypers(String),
    /// A frame holds data the descriptor cannot use (missing column, bad axis, zero quaternion...).
    #[error("frame {frame}: {message}")]
    Frame {
        /// 0-based frame index in the order given.
        frame: usize,
        /// What is wrong.
        message: String,
    },
    /// A frame of a named input file holds data the descriptor cannot use (a [`Error::Frame`]
    /// located in its file by the streaming pipeline).
    #[error("{path}: frame {frame} (0-based, in that file): {message}")]
    InFile {
        /// Input file.
        path: PathBuf,
        /// 0-based frame index within `path`.
        frame: usize,
        /// What is wrong.
        message: String,
    },
    /// The requested work would not fit the configured memory bounds.
    #[error("too large: {0}")]
    TooLarge(String),
    /// The requested device or dtype is unavailable.
    #[error("device: {0}")]
    Device(String),
    /// An I/O failure on a named file. The message already includes the underlying error, so
    /// it is not also exposed as `source()` (error reports would print it twice).
    #[error("{path}: {error}")]
    Io {
        /// File concerned.
        path: PathBuf,
        /// Underlying error.
        error: std::io::Error,
    },
    /// An error from the Candle tensor library.
    #[error("candle: {0}")]
    Candle(candle_core::Error),
}

/// The Candle message is part of ours, so it is not also exposed as `source()` (error reports
/// would print it twice).
impl From<candle_core::Error> for Error {
    fn from(error: candle_core::Error) -> Self {
        Error::Candle(error)
    }
}

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, Error>;
