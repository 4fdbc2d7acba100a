//! Host-side bindings of each contract version, generated from `wit/`.
//!
//! A plugin built against 0.1 keeps working when 0.2 arrives: each version
//! gets its own module here, the loader picks the one a component exports,
//! and the rest of the host speaks only the version-free types in `job.rs`.

pub mod v0_1 {
    wasmtime::component::bindgen!({
        path: "../../wit/v0.1",
        world: "plugin",
        imports: { default: async | trappable },
        exports: { default: async },
    });

    /// The export a 0.1 plugin must have.
    pub const HANDLER_EXPORT: &str = "jobrunner:plugin/handler@0.1.0";
}
