//! Channels, the processing pipeline, destination queues and delivery.
