//! Retention: pruning finished messages per channel in the background.
