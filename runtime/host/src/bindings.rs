//! The generated bindings for the `choreo:handler` world: the only place `bindgen!`
//! runs, so every other module refers to one set of types.
//!
//! Every import is async (state reads may wait on storage) and trappable (a host bug
//! becomes a trap of that one call, never a panic of the runtime); exports are called
//! asynchronously so epoch interruption can yield a long-running guest to the executor.

wasmtime::component::bindgen!({
    world: "handler",
    path: "../../wit",
    imports: { default: async | trappable },
    exports: { default: async },
});
