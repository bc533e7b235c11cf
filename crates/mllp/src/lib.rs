//! MLLP framing, and async MLLP servers and clients over TCP and TLS.
