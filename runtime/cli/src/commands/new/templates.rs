//! The files of a new handler project, one template per file under `runtime/cli/templates/`
//! (embedded in the binary), with `{{name}}`-style placeholders filled from [`Vars`].
//!
//! Decision: the templates are plain files rather than strings in code, so each reads as
//! the file it becomes; they end in `.tmpl` so that no tool (cargo, rustfmt, linters)
//! mistakes them for the project's own sources.

use std::path::PathBuf;

use crate::project::{Language, PROJECT_FILE};

/// One file of a new project: where it goes (relative to the project, `{{name}}` filled
/// in) and its template.
struct Template {
    path: &'static str,
    text: &'static str,
}

macro_rules! template {
    ($path:expr, $file:literal) => {
        Template {
            path: $path,
            text: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/templates/", $file)),
        }
    };
}

/// The deploy manifest, the same for every language.
const COMMON: &[Template] = &[template!("{{name}}.toml", "common/manifest.toml.tmpl")];

const RUST: &[Template] = &[
    template!(PROJECT_FILE, "rust/choreo.project.toml.tmpl"),
    template!("Cargo.toml", "rust/Cargo.toml.tmpl"),
    template!("src/lib.rs", "rust/lib.rs.tmpl"),
    template!("README.md", "rust/README.md.tmpl"),
    template!(".gitignore", "rust/gitignore.tmpl"),
];

const PYTHON: &[Template] = &[
    template!(PROJECT_FILE, "python/choreo.project.toml.tmpl"),
    template!("app.py", "python/app.py.tmpl"),
    template!("README.md", "python/README.md.tmpl"),
    template!(".gitignore", "python/gitignore.tmpl"),
];

const JS: &[Template] = &[
    template!(PROJECT_FILE, "js/choreo.project.toml.tmpl"),
    template!("handler.js", "js/handler.js.tmpl"),
    template!("README.md", "js/README.md.tmpl"),
    template!(".gitignore", "js/gitignore.tmpl"),
];

/// The values the placeholders stand for.
#[derive(Debug)]
pub(crate) struct Vars {
    /// `{{name}}`: the handler name (already validated, so safe in any of the files).
    pub(crate) name: String,
    /// `{{sdk}}`: the choreo checkout, for people to read.
    pub(crate) sdk: String,
    /// `{{sdk_toml}}`: the checkout as a TOML string.
    pub(crate) sdk_toml: String,
    /// `{{sdk_rust_toml}}`: the Rust SDK crate (`<checkout>/sdk/rust`) as a TOML string.
    pub(crate) sdk_rust_toml: String,
}

impl Vars {
    fn fill(&self, text: &str) -> String {
        let filled = text
            .replace("{{name}}", &self.name)
            .replace("{{sdk}}", &self.sdk)
            .replace("{{sdk_toml}}", &self.sdk_toml)
            .replace("{{sdk_rust_toml}}", &self.sdk_rust_toml);
        debug_assert!(
            !filled.contains("{{"),
            "a template uses a placeholder that Vars does not fill"
        );
        filled
    }
}

/// Every file of a new project in `language`, relative to the project, with its content.
pub(crate) fn render(language: Language, vars: &Vars) -> Vec<(PathBuf, String)> {
    let own = match language {
        Language::Rust => RUST,
        Language::Python => PYTHON,
        Language::Js => JS,
    };
    let instances = instances_setting(language);
    COMMON
        .iter()
        .chain(own)
        .map(|t| {
            let text = t.text.replace("{{instances}}", instances);
            (PathBuf::from(vars.fill(t.path)), vars.fill(&text))
        })
        .collect()
}

/// The manifest's `deliveries_per_instance` lines (`{{instances}}`). A compiled Rust guest
/// instantiates in microseconds, so it keeps the default, a fresh instance per delivery.
/// An interpreter (CPython, SpiderMonkey) costs milliseconds to instantiate and warm up,
/// about thirty times its handler's own work, so those projects keep their instance.
fn instances_setting(language: Language) -> &'static str {
    match language {
        Language::Rust => {
            "# Deliveries one instance serves in turn before a fresh one replaces it. 1 gives\n\
             # every delivery a fresh instance: nothing in memory outlives an event.\n\
             # deliveries_per_instance = 1"
        }
        Language::Python | Language::Js => {
            "# Deliveries one instance serves in turn before a fresh one replaces it. Starting\n\
             # the interpreter costs far more than a typical handler's work, so the instance is\n\
             # kept: module-level variables live on between deliveries (use `state` for what\n\
             # must last). Any failure, trap or deadline replaces the instance; 1 gives every\n\
             # delivery a fresh one.\n\
             deliveries_per_instance = 1000"
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::project::Project;

    const LANGUAGES: [Language; 3] = [Language::Rust, Language::Python, Language::Js];

    fn vars() -> Vars {
        Vars {
            name: "greeter-2".into(),
            sdk: "/src/my \"choreo\"".into(),
            sdk_toml: toml::Value::from("/src/my \"choreo\"").to_string(),
            sdk_rust_toml: toml::Value::from("/src/my \"choreo\"/sdk/rust").to_string(),
        }
    }

    #[test]
    fn every_placeholder_is_filled() {
        for language in LANGUAGES {
            for (path, text) in render(language, &vars()) {
                assert!(!path.to_string_lossy().contains('{'), "{}", path.display());
                assert!(!text.contains("{{"), "{language}: {}", path.display());
                assert!(!text.contains("}}"), "{language}: {}", path.display());
            }
        }
    }

    #[test]
    fn every_project_has_its_files() {
        let expected: [(Language, &[&str]); 3] = [
            (Language::Rust, &["Cargo.toml", "src/lib.rs"]),
            (Language::Python, &["app.py"]),
            (Language::Js, &["handler.js"]),
        ];
        for (language, sources) in expected {
            let files: Vec<PathBuf> = render(language, &vars())
                .into_iter()
                .map(|(p, _)| p)
                .collect();
            for name in [PROJECT_FILE, "greeter-2.toml", "README.md", ".gitignore"]
                .iter()
                .chain(sources)
            {
                assert!(files.contains(&PathBuf::from(name)), "{language}: {name}");
            }
        }
    }

    #[test]
    fn the_project_file_reads_back_as_the_project() {
        for language in LANGUAGES {
            let dir = tempfile::tempdir().unwrap();
            for (path, text) in render(language, &vars()) {
                let path = dir.path().join(path);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, text).unwrap();
            }
            let project = Project::load(dir.path()).unwrap();
            assert_eq!(project.name.as_str(), "greeter-2");
            assert_eq!(project.language, language);
            if language == Language::Rust {
                assert_eq!(project.sdk, None);
            } else {
                assert_eq!(project.sdk, Some(PathBuf::from("/src/my \"choreo\"")));
                assert!(project.entry.unwrap().is_file(), "{language}");
            }
        }
    }

    #[test]
    fn the_manifest_is_valid_and_sets_the_suffix() {
        let (path, text) = render(Language::Js, &vars()).remove(0);
        let manifest = choreo_deploy::Manifest::parse(Path::new(&path), &text).unwrap();
        assert_eq!(manifest.config.get("suffix").map(String::as_str), Some("!"));
        let defaults = choreo_deploy::Manifest::default();
        assert_eq!(
            manifest.retry, defaults.retry,
            "the commented values are the defaults"
        );
        assert_eq!(manifest.limits, defaults.limits);
        assert_eq!(manifest.concurrency, defaults.concurrency);
    }

    #[test]
    fn the_cargo_manifest_is_its_own_workspace_and_finds_the_sdk() {
        let files = render(Language::Rust, &vars());
        let cargo = &files
            .iter()
            .find(|(p, _)| p == Path::new("Cargo.toml"))
            .unwrap()
            .1;
        let cargo: toml::Table = toml::from_str(cargo).unwrap();
        assert!(cargo["workspace"].is_table());
        assert_eq!(cargo["package"]["name"].as_str(), Some("greeter-2"));
        assert_eq!(
            cargo["dependencies"]["choreo-sdk"]["path"].as_str(),
            Some("/src/my \"choreo\"/sdk/rust")
        );
        assert_eq!(cargo["lib"]["crate-type"][0].as_str(), Some("cdylib"));
    }

    #[test]
    fn sources_subscribe_and_publish_under_the_name() {
        for language in LANGUAGES {
            let files = render(language, &vars());
            let source = files
                .iter()
                .find(|(p, _)| {
                    ["lib.rs", "app.py", "handler.js"]
                        .contains(&p.file_name().unwrap().to_str().unwrap())
                })
                .unwrap();
            for topic in ["greeter-2.in", "greeter-2.out"] {
                assert!(source.1.contains(topic), "{language}: {topic}");
            }
        }
    }
}
