//! The HTTP API, metrics, FHIR read API and dashboard.
