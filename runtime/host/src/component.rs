//! Compiling components, caching their compiled form, and checking that they fit the
//! `choreo:handler` world.
//!
//! Compiling is CPU-heavy (seconds for a Python or JavaScript guest): callers run these
//! functions off the async threads. The world check runs before anything is
//! instantiated and reports every problem at once, in words an author can act on.

use wasmtime::component::{Component, types::ComponentItem};

use crate::bindings::HandlerPre;
use crate::call::CallState;
use crate::{Error, Host};

/// The versions of the `choreo:handler` package this host links, as a semver range.
pub const ACCEPTED_WORLD_VERSIONS: &str = "choreo:handler@0.1.x";

/// The functions a handler component must export.
const REQUIRED_EXPORTS: [&str; 3] = ["describe", "handle", "query"];

const WASM_MAGIC: &[u8; 4] = b"\0asm";
const CORE_MODULE_VERSION: [u8; 4] = [1, 0, 0, 0];

impl Host {
    /// Compiles a component from its binary. `source_name` (a path or a name) is used
    /// in errors.
    pub fn compile(&self, source_name: &str, wasm: &[u8]) -> Result<Component, Error> {
        if wasm.len() >= 8 && &wasm[..4] == WASM_MAGIC && wasm[4..8] == CORE_MODULE_VERSION {
            return Err(Error::CoreModule {
                source_name: source_name.to_owned(),
            });
        }
        Component::new(&self.inner.engine, wasm).map_err(|reason| Error::Compile {
            source_name: source_name.to_owned(),
            reason,
        })
    }

    /// The compiled form of `component`, to cache and load later with
    /// [`Host::load_precompiled`].
    pub fn precompile(&self, source_name: &str, component: &Component) -> Result<Vec<u8>, Error> {
        component.serialize().map_err(|reason| Error::Artifact {
            source_name: source_name.to_owned(),
            reason,
        })
    }

    /// Loads a compiled artifact made by [`Host::precompile`].
    ///
    /// # Safety
    ///
    /// The bytes are trusted as machine code: they must come from `precompile` on a host
    /// with the same [`Host::artifact_fingerprint`], from storage nobody else can write.
    pub unsafe fn load_precompiled(
        &self,
        source_name: &str,
        bytes: &[u8],
    ) -> Result<Component, Error> {
        // SAFETY: the caller guarantees the bytes came from `precompile` on a compatible
        // engine; wasmtime still checks the engine compatibility header itself.
        unsafe { Component::deserialize(&self.inner.engine, bytes) }.map_err(|reason| {
            Error::Artifact {
                source_name: source_name.to_owned(),
                reason,
            }
        })
    }

    /// Checks `component` against the world and links it, ready to instantiate.
    pub(crate) fn link(
        &self,
        source_name: &str,
        component: &Component,
    ) -> Result<HandlerPre<CallState>, Error> {
        let wrong_world = |problems: Vec<String>| Error::WrongWorld {
            source_name: source_name.to_owned(),
            problems: problems.join("; "),
        };
        let problems = world_problems(&self.inner.engine, component);
        if !problems.is_empty() {
            return Err(wrong_world(problems));
        }
        let pre = self
            .inner
            .linker
            .instantiate_pre(component)
            .map_err(|err| wrong_world(vec![format!("{err:#}")]))?;
        HandlerPre::new(pre).map_err(|err| wrong_world(vec![format!("{err:#}")]))
    }
}

/// Everything visibly wrong with the component's imports and exports. Type mismatches
/// inside matching names are left to the linker, whose messages name the item.
fn world_problems(engine: &wasmtime::Engine, component: &Component) -> Vec<String> {
    let ty = component.component_type();
    let mut problems = Vec::new();
    for (name, _) in ty.imports(engine) {
        if name.starts_with("wasi:") {
            continue;
        }
        if let Some(interface) = name.strip_prefix("choreo:handler/") {
            let version = interface.split_once('@').map(|(_, v)| v).unwrap_or("");
            if !version.starts_with("0.1.") {
                problems.push(format!(
                    "imports `{name}`, but this runtime accepts {ACCEPTED_WORLD_VERSIONS}; rebuild it against the 0.1 contract"
                ));
            }
            continue;
        }
        problems.push(format!(
            "imports `{name}`, which choreo does not provide (only wasi:*@0.2 and {ACCEPTED_WORLD_VERSIONS} are linked)"
        ));
    }
    let exports: Vec<(String, ComponentItem)> = ty
        .exports(engine)
        .map(|(name, item)| (name.to_owned(), item.ty))
        .collect();
    for required in REQUIRED_EXPORTS {
        match exports.iter().find(|(name, _)| name == required) {
            Some((_, ComponentItem::ComponentFunc(_))) => {}
            Some(_) => problems.push(format!("exports `{required}`, but not as a function")),
            None => problems.push(format!("does not export the function `{required}`")),
        }
    }
    if problems.iter().any(|p| p.starts_with("does not export")) {
        let found: Vec<&str> = exports.iter().map(|(name, _)| name.as_str()).collect();
        problems.push(format!(
            "it exports [{}]; a handler exports describe, handle and query (world choreo:handler/handler)",
            found.join(", ")
        ));
    }
    problems
}
