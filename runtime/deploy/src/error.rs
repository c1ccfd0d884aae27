//! Errors of deploying: reading files, parsing manifests, loading components, watching
//! the folder.
//!
//! Every variant names the file involved, because each one ends up in front of a person
//! as a [`crate::Problem`] (log, API, portal) or as the error of `choreo deploy`.

use std::io;
use std::path::{Path, PathBuf};

use choreo_core::HandlerName;

/// Why a file could not be deployed, or the deployer could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory could not be read, written or created.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// What was being done (`read`, `create directory`, …).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// A manifest is not valid TOML, has an unknown key, or a value out of range.
    #[error("{}: {message}", file.display())]
    Manifest {
        /// The manifest.
        file: PathBuf,
        /// What is wrong, naming the key.
        message: String,
    },
    /// The component could not be compiled, does not fit the world, or its `describe`
    /// failed. The host's message already names the file.
    #[error("{reason}")]
    Component {
        /// The `.wasm` file.
        file: PathBuf,
        /// What the host said.
        reason: choreo_host::Error,
    },
    /// The file is larger than the deployer accepts.
    #[error("{} is {size} bytes; the limit is {limit}", file.display())]
    TooLarge {
        /// The file.
        file: PathBuf,
        /// Its size.
        size: u64,
        /// The limit for this kind of file.
        limit: u64,
    },
    /// Another file already provides the handler this file declares.
    #[error(
        "`{}` declares handler `{handler}`, already deployed from `{}`",
        file_name(file),
        file_name(owner)
    )]
    Conflict {
        /// The file that was not deployed.
        file: PathBuf,
        /// The handler both declare.
        handler: HandlerName,
        /// The file the running handler came from.
        owner: PathBuf,
    },
    /// The file cannot be deployed under this name (not `.wasm`, hidden, or a temp name
    /// the watcher ignores).
    #[error("{} cannot be deployed: {reason}", file.display())]
    NotDeployable {
        /// The file.
        file: PathBuf,
        /// Why.
        reason: &'static str,
    },
    /// The deploy folder could not be watched.
    #[error("cannot watch {}", dir.display())]
    Watch {
        /// The deploy folder.
        dir: PathBuf,
        /// What the watcher said.
        #[source]
        source: notify::Error,
    },
}

impl Error {
    /// The file this error is about, where a [`crate::Problem`] is recorded.
    pub(crate) fn file(&self) -> &Path {
        match self {
            Error::Io { path, .. } => path,
            Error::Manifest { file, .. }
            | Error::Component { file, .. }
            | Error::TooLarge { file, .. }
            | Error::Conflict { file, .. }
            | Error::NotDeployable { file, .. } => file,
            Error::Watch { dir, .. } => dir,
        }
    }

    /// The message with its causes, for a [`crate::Problem`] and for logs.
    pub(crate) fn chain(&self) -> String {
        choreo_core::with_causes(self)
    }
}

/// The last component of `path`, for messages that compare two files of one folder.
fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

pub(crate) fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io {
        action,
        path,
        source,
    }
}
