//! A handler project on disk, as `choreo new` writes it and `choreo build` reads it: the
//! `choreo.project.toml` file that marks the project and names its handler and language,
//! and the choreo checkout (the "SDK") whose SDKs and build scripts turn it into a
//! component. Keeps no state; every function reads the disk when called.
//!
//! ```toml
//! [handler]
//! name = "greeter"          # a valid handler name; the component is built as greeter.wasm
//! language = "python"       # rust | python | js
//! entry = "app.py"          # python and js only [default: app.py, handler.js]
//! sdk = "/src/choreo"       # python and js only: the choreo checkout
//!                           # [default: the one this binary was built from]
//! ```
//!
//! A rust project has neither `entry` nor `sdk`: cargo builds it from its `Cargo.toml`,
//! which takes `choreo-sdk` by path from a checkout.
//!
//! Decision: the project file has a name that no handler can have (handler names hold no
//! `.`), so it can never collide with the handler's own deploy manifest `<name>.toml`
//! beside it, and it is not `choreo.toml`, the name the README gives `choreo serve`'s
//! config file.

use std::fmt;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, bail};
use choreo_core::HandlerName;
use serde::Deserialize;

/// The file that marks a directory as a handler project.
pub(crate) const PROJECT_FILE: &str = "choreo.project.toml";

/// The Rust target a handler component is built for; rustc links the component directly.
pub(crate) const WASM_TARGET: &str = "wasm32-wasip2";

/// Where `choreo new` finds the SDKs when neither `--sdk` nor `CHOREO_SDK_DIR` says: the
/// checkout this binary was built from (`runtime/cli` is two levels below its root).
/// Decision: the SDKs are not published to any registry, so a scaffolded project refers to
/// a checkout by path, and the natural default is the one that built this `choreo`.
const BUILT_FROM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// The languages a handler project can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Language {
    /// Rust, with `choreo-sdk` (`sdk/rust`), built by cargo.
    Rust,
    /// Python, with `choreo_sdk` (`sdk/python`), built by componentize-py.
    Python,
    /// JavaScript, with `@choreo/sdk` (`sdk/js`), built by componentize-js.
    Js,
}

impl Language {
    /// The name used on the command line and in the project file.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Language::Rust => "rust",
            Language::Python => "python",
            Language::Js => "js",
        }
    }

    /// The source file the build starts from, relative to the project, when the project
    /// file names none. Rust projects have none: cargo reads `Cargo.toml`.
    pub(crate) fn default_entry(self) -> Option<&'static str> {
        match self {
            Language::Rust => None,
            Language::Python => Some("app.py"),
            Language::Js => Some("handler.js"),
        }
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `choreo.project.toml` as written; unknown keys are errors.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProjectFile {
    handler: RawHandler,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHandler {
    name: String,
    language: Language,
    entry: Option<PathBuf>,
    sdk: Option<PathBuf>,
}

/// A validated handler project.
#[derive(Debug, Clone)]
pub(crate) struct Project {
    /// The project directory.
    pub(crate) dir: PathBuf,
    /// The handler's name, as the project file gives it.
    pub(crate) name: HandlerName,
    pub(crate) language: Language,
    /// The module the build starts from (Python and JavaScript), inside `dir`.
    pub(crate) entry: Option<PathBuf>,
    /// The checkout the project file names, if it names one (relative to `dir`).
    pub(crate) sdk: Option<PathBuf>,
}

impl Project {
    /// Reads and validates the project in `dir`.
    pub(crate) fn load(dir: &Path) -> anyhow::Result<Project> {
        if !dir.is_dir() {
            bail!("{} is not a directory", dir.display());
        }
        let file = dir.join(PROJECT_FILE);
        let text = match std::fs::read_to_string(&file) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => bail!(
                "{} is not a choreo handler project: it has no {PROJECT_FILE} \
                 (`choreo new NAME --lang rust|python|js` creates one)",
                dir.display()
            ),
            Err(err) => {
                return Err(err).with_context(|| format!("cannot read {}", file.display()));
            }
        };
        Project::parse(dir, &text).with_context(|| format!("invalid {}", file.display()))
    }

    /// Validates the text of a project file for the project in `dir`.
    fn parse(dir: &Path, text: &str) -> anyhow::Result<Project> {
        let raw: RawProjectFile = toml::from_str(text)?;
        let RawHandler {
            name,
            language,
            entry,
            sdk,
        } = raw.handler;
        let name = HandlerName::new(name).context("[handler] name")?;
        let entry = match (language.default_entry(), entry) {
            (None, None) => None,
            (None, Some(_)) => bail!(
                "[handler] entry: a rust project has no entry; cargo builds it from Cargo.toml"
            ),
            (Some(default), entry) => {
                let entry = entry.unwrap_or_else(|| PathBuf::from(default));
                if !is_inside(&entry) {
                    bail!(
                        "[handler] entry: {} must be a relative path inside the project",
                        entry.display()
                    );
                }
                Some(dir.join(entry))
            }
        };
        if language == Language::Rust && sdk.is_some() {
            bail!("[handler] sdk: a rust project takes choreo-sdk from the path in its Cargo.toml");
        }
        Ok(Project {
            dir: dir.to_path_buf(),
            name,
            language,
            entry,
            sdk: sdk.map(|sdk| dir.join(sdk)),
        })
    }

    /// Where the component goes unless the caller says: `<dir>/<name>.wasm`, beside the
    /// handler's deploy manifest `<name>.toml`, so `choreo deploy` takes both.
    pub(crate) fn default_output(&self) -> PathBuf {
        self.dir.join(format!("{}.wasm", self.name))
    }

    /// The handler's deploy manifest.
    pub(crate) fn manifest(&self) -> PathBuf {
        self.dir.join(format!("{}.toml", self.name))
    }
}

/// Whether `path` is relative and does not climb out of the directory it is joined to.
fn is_inside(path: &Path) -> bool {
    path.components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
        && path.components().any(|c| matches!(c, Component::Normal(_)))
}

/// A choreo checkout: the directory holding `wit/` and `sdk/{rust,python,js}`, and where
/// the Python and JavaScript build tools are installed for it (`target/sdk-tools` and
/// `sdk/js/node_modules`, the places choreo's own tests use).
#[derive(Debug, Clone)]
pub(crate) struct Sdk {
    root: PathBuf,
}

impl Sdk {
    /// The checkout at `given` (its root or its `sdk/` folder), or the one this binary was
    /// built from. Fails, saying what is missing, unless it holds the WIT contract and the
    /// SDK of `language`.
    pub(crate) fn locate(given: Option<&Path>, language: Language) -> anyhow::Result<Sdk> {
        let (path, how) = match given {
            Some(path) => (path.to_path_buf(), "given by --sdk or CHOREO_SDK_DIR"),
            None => (
                PathBuf::from(BUILT_FROM),
                "the checkout this choreo was built from; pass --sdk or set CHOREO_SDK_DIR \
                 to use another",
            ),
        };
        let path = std::path::absolute(&path)
            .with_context(|| format!("cannot resolve {}", path.display()))?;
        // Accept the `sdk/` folder itself, which is what "the SDK dir" may well mean.
        let root = if path.join("rust").join("Cargo.toml").is_file()
            && path.parent().is_some_and(|p| p.join("wit").is_dir())
        {
            path.parent().expect("checked above").to_path_buf()
        } else {
            path.clone()
        };
        let sdk = Sdk {
            root: root.canonicalize().unwrap_or(root),
        };
        let required = [
            sdk.wit().join("handler.wit"),
            match language {
                Language::Rust => sdk.rust().join("Cargo.toml"),
                Language::Python => sdk.python().join("build.py"),
                Language::Js => sdk.js().join("build.mjs"),
            },
        ];
        if let Some(missing) = required.iter().find(|p| !p.is_file()) {
            bail!(
                "{} ({how}) is not a choreo checkout with the {language} SDK: {} is missing",
                path.display(),
                missing.display()
            );
        }
        Ok(sdk)
    }

    /// The checkout's root.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn wit(&self) -> PathBuf {
        self.root.join("wit")
    }

    /// The Rust SDK crate, `choreo-sdk`.
    pub(crate) fn rust(&self) -> PathBuf {
        self.root.join("sdk").join("rust")
    }

    pub(crate) fn python(&self) -> PathBuf {
        self.root.join("sdk").join("python")
    }

    pub(crate) fn js(&self) -> PathBuf {
        self.root.join("sdk").join("js")
    }

    /// The checkout's `Cargo.lock`: the dependency versions choreo tests its SDK with.
    pub(crate) fn cargo_lock(&self) -> PathBuf {
        self.root.join("Cargo.lock")
    }

    /// The checkout as the SDK build tools see it: where they are installed.
    pub(crate) fn checkout(&self) -> choreo_sdk_tools::Checkout {
        choreo_sdk_tools::Checkout::new(&self.root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> anyhow::Result<Project> {
        Project::parse(Path::new("/p"), text)
    }

    #[test]
    fn reads_a_project_file_with_defaults() {
        let project = parse("[handler]\nname = \"greeter\"\nlanguage = \"python\"\n").unwrap();
        assert_eq!(project.name.as_str(), "greeter");
        assert_eq!(project.language, Language::Python);
        assert_eq!(project.entry, Some(PathBuf::from("/p/app.py")));
        assert_eq!(project.sdk, None);
        assert_eq!(project.default_output(), Path::new("/p/greeter.wasm"));
        assert_eq!(project.manifest(), Path::new("/p/greeter.toml"));

        let js = parse(
            "[handler]\nname = \"g\"\nlanguage = \"js\"\nentry = \"src/main.js\"\nsdk = \"../choreo\"\n",
        )
        .unwrap();
        assert_eq!(js.entry, Some(PathBuf::from("/p/src/main.js")));
        assert_eq!(js.sdk, Some(PathBuf::from("/p/../choreo")));

        let rust = parse("[handler]\nname = \"g\"\nlanguage = \"rust\"\n").unwrap();
        assert_eq!(rust.entry, None);
    }

    #[test]
    fn refuses_bad_project_files() {
        let cases = [
            (
                "[handler]\nname = \"Greeter\"\nlanguage = \"js\"\n",
                "handler name `Greeter`",
            ),
            (
                "[handler]\nname = \"g\"\nlanguage = \"go\"\n",
                "unknown variant `go`",
            ),
            (
                "[handler]\nname = \"g\"\nlanguage = \"js\"\nlang = \"js\"\n",
                "unknown field `lang`",
            ),
            ("[handler]\nname = \"g\"\n", "missing field `language`"),
            (
                "[handler]\nname = \"g\"\nlanguage = \"rust\"\nentry = \"src/lib.rs\"\n",
                "a rust project has no entry",
            ),
            (
                "[handler]\nname = \"g\"\nlanguage = \"rust\"\nsdk = \"/c\"\n",
                "takes choreo-sdk from the path in its Cargo.toml",
            ),
            (
                "[handler]\nname = \"g\"\nlanguage = \"python\"\nentry = \"../app.py\"\n",
                "inside the project",
            ),
            (
                "[handler]\nname = \"g\"\nlanguage = \"python\"\nentry = \"/app.py\"\n",
                "inside the project",
            ),
        ];
        for (text, expected) in cases {
            let err = format!("{:#}", parse(text).unwrap_err());
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }

    #[test]
    fn a_directory_without_a_project_file_is_not_a_project() {
        let dir = tempfile::tempdir().unwrap();
        let err = format!("{:#}", Project::load(dir.path()).unwrap_err());
        assert!(err.contains("is not a choreo handler project"), "{err}");
        let err = format!("{:#}", Project::load(&dir.path().join("nope")).unwrap_err());
        assert!(err.contains("is not a directory"), "{err}");
    }

    #[test]
    fn finds_the_checkout_it_was_built_from_and_refuses_other_dirs() {
        for language in [Language::Rust, Language::Python, Language::Js] {
            let sdk = Sdk::locate(None, language).unwrap();
            assert!(sdk.wit().join("handler.wit").is_file());
            // The `sdk/` folder is accepted for the checkout.
            let via_sdk_dir = Sdk::locate(Some(&sdk.root().join("sdk")), language).unwrap();
            assert_eq!(via_sdk_dir.root(), sdk.root());
        }
        let empty = tempfile::tempdir().unwrap();
        let err = format!(
            "{:#}",
            Sdk::locate(Some(empty.path()), Language::Js).unwrap_err()
        );
        assert!(
            err.contains("is not a choreo checkout with the js SDK"),
            "{err}"
        );
        assert!(err.contains("handler.wit is missing"), "{err}");
    }
}
