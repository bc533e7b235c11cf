//! The master patient index: deterministic and probabilistic patient matching and linking.
