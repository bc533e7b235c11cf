//! The stages a channel can run, each built from its configuration by `Engine::start`.

pub mod mpi;
pub mod validate;
