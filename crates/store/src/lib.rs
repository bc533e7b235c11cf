//! Durable storage: the message journal, destination queues and indexes (SQLite).
