//! The stages a channel can run, each built from its configuration by `Engine::start`.

pub mod fhir;
pub mod mpi;
pub mod rules;
pub mod terminology;
pub mod validate;
