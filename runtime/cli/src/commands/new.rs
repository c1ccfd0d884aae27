//! `choreo new NAME --lang rust|python|js`: writes a handler project that `choreo build`
//! turns into a component as is: the handler's source, its deploy manifest `NAME.toml`,
//! the project file `choreo.project.toml`, a README with the build and run commands, and a
//! `.gitignore`. The files come from the templates in `templates` (module and folder).
//!
//! The project is written into a hidden temp directory beside its destination and renamed
//! into place, so a failure leaves nothing half-written, and an existing directory is never
//! written into.

mod templates;

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use choreo_core::HandlerName;

use crate::project::{Language, Sdk};

/// Arguments of `choreo new`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The handler's name: lower-case letters, digits and `-`, starting with a letter; also
    /// the project's directory
    name: String,
    /// The language to write the handler in
    #[arg(long, value_enum, env = "CHOREO_NEW_LANG")]
    lang: Language,
    /// The directory to create the project in
    #[arg(long, env = "CHOREO_NEW_DIR", default_value = ".")]
    dir: PathBuf,
    /// The choreo checkout (or its `sdk/` folder) whose SDK the project uses [default: the
    /// checkout this choreo was built from]
    #[arg(long, env = "CHOREO_SDK_DIR")]
    sdk: Option<PathBuf>,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let name = handler_name(&args.name)?;
    let sdk = Sdk::locate(args.sdk.as_deref(), args.lang)?;
    let project = args.dir.join(name.as_str());
    create(&project, &name, args.lang, &sdk)?;
    println!(
        "created the {} handler `{name}` in {}, using the SDK in {}",
        args.lang,
        project.display(),
        sdk.root().display()
    );
    println!("next:");
    println!("  cd {}", project.display());
    println!("  choreo build    # → {name}.wasm");
    println!("  choreo deploy {name}.wasm --deploy-dir <the folder choreo serve watches>");
    Ok(())
}

/// Validates `name` as a handler name. Such a name is also a safe directory name: no `/`,
/// no `.`, and it cannot be the project file's stem (which holds a `.`).
fn handler_name(name: &str) -> anyhow::Result<HandlerName> {
    Ok(HandlerName::new(name)?)
}

/// Writes the project at `project`, which must not exist yet.
fn create(project: &Path, name: &HandlerName, language: Language, sdk: &Sdk) -> anyhow::Result<()> {
    if project.symlink_metadata().is_ok() {
        bail!(
            "{} already exists; choose another name, or another parent with --dir",
            project.display()
        );
    }
    let parent = project.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    let staging = tempfile::Builder::new()
        .prefix(&format!(".{name}.choreo-new-"))
        .tempdir_in(parent)
        .with_context(|| format!("cannot create a temp directory in {}", parent.display()))?;
    let vars = templates::Vars {
        name: name.to_string(),
        sdk: sdk.root().display().to_string(),
        sdk_toml: toml_string(sdk.root())?,
        sdk_rust_toml: toml_string(&sdk.rust())?,
    };
    for (path, text) in templates::render(language, &vars) {
        let path = staging.path().join(path);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if language == Language::Rust {
        // Start from the versions choreo builds and tests its SDK with; cargo drops what
        // this crate does not use, and needs no registry index for what is already locked.
        let lock = sdk.cargo_lock();
        if lock.is_file() {
            fs::copy(&lock, staging.path().join("Cargo.lock"))
                .with_context(|| format!("cannot copy {}", lock.display()))?;
        }
    }
    // Checked again just before the rename: on Linux, renaming onto an empty directory
    // would replace it.
    if project.symlink_metadata().is_ok() {
        bail!("{} already exists", project.display());
    }
    let staged = staging.keep();
    fs::rename(&staged, project).or_else(|err| {
        let _ = fs::remove_dir_all(&staged);
        Err(err).with_context(|| format!("cannot create {}", project.display()))
    })
}

/// `path` as a TOML string literal.
fn toml_string(path: &Path) -> anyhow::Result<String> {
    let text = path
        .to_str()
        .with_context(|| format!("the SDK path {} is not UTF-8", path.display()))?;
    Ok(toml::Value::from(text).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::project::PROJECT_FILE;

    #[test]
    fn names_follow_the_handler_name_rules() {
        for good in ["greeter", "order-view2", "a"] {
            assert!(handler_name(good).is_ok(), "{good}");
        }
        for (bad, reason) in [
            ("", "handler name is empty"),
            ("Greeter", "must start with a lower-case letter"),
            ("2fast", "must start with a lower-case letter"),
            ("my_handler", "found '_'"),
            ("a.b", "found '.'"),
            ("../x", "found '.'"),
        ] {
            let err = handler_name(bad).unwrap_err().to_string();
            assert!(err.contains(reason), "{bad:?}: {err}");
        }
        let long = "a".repeat(choreo_core::MAX_HANDLER_NAME_BYTES + 1);
        assert!(handler_name(&long).is_err());
    }

    #[test]
    fn creates_a_project_and_refuses_an_existing_directory() {
        let parent = tempfile::tempdir().unwrap();
        let name = handler_name("greeter").unwrap();
        let sdk = Sdk::locate(None, Language::Rust).unwrap();
        let project = parent.path().join("nested").join("greeter");
        create(&project, &name, Language::Rust, &sdk).unwrap();
        for file in [
            "Cargo.toml",
            "Cargo.lock",
            "src/lib.rs",
            "greeter.toml",
            PROJECT_FILE,
        ] {
            assert!(project.join(file).is_file(), "{file}");
        }
        let readme = fs::read_to_string(project.join("README.md")).unwrap();
        assert!(
            readme.contains(&sdk.root().display().to_string()),
            "{readme}"
        );

        let err = create(&project, &name, Language::Js, &sdk)
            .unwrap_err()
            .to_string();
        assert!(err.contains("already exists"), "{err}");
        assert!(
            project.join("Cargo.toml").is_file(),
            "the first project is untouched"
        );
        // Nothing else was left beside it.
        let entries: Vec<_> = fs::read_dir(project.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(entries, ["greeter"]);
    }
}
