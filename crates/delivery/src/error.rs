//! Errors of the delivery crate, as values with words a person can act on.

/// A destination's configuration cannot be used; the words name the destination and key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A key or value of the destination is wrong.
    #[error("destination {destination:?}: {reason}")]
    Invalid {
        /// The destination's `name`.
        destination: String,
        /// What is wrong, naming the key.
        reason: String,
    },
    /// Two destinations of one channel share a name (the name identifies the queue).
    #[error("channel {channel:?} has two destinations named {destination:?}")]
    DuplicateName {
        /// The channel.
        channel: String,
        /// The repeated name.
        destination: String,
    },
    /// A filter or transformer of the destination could not be built.
    #[error("destination {destination:?}: {error}")]
    Step {
        /// The destination's `name`.
        destination: String,
        /// What the step compiler said (it names `filters[i]` or `transforms[i]`).
        error: steps::StepError,
    },
}

/// Why [`Delivery::start`](crate::Delivery::start) could not start the destinations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// A destination's configuration is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The queue tables could not be created or read.
    #[error("the destination queues could not be prepared: {0}")]
    Store(#[from] store::Error),
}

/// Why one delivery did not go through. The worker retries [`Transient`] failures with
/// backoff; a [`Refused`] message follows the destination's `on_nak` policy.
///
/// [`Transient`]: FailureKind::Transient
/// [`Refused`]: FailureKind::Refused
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct DeliveryError {
    /// Whether trying again may help.
    pub kind: FailureKind,
    /// What happened, in words (no message content).
    pub reason: String,
    /// What the receiver answered, when it answered (the NAK, the HTTP status line).
    pub answer: Option<String>,
}

/// The two kinds of failed delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The receiver could not be reached or did not answer in time; try again later.
    Transient,
    /// The receiver answered and refused the message (MLLP AE/AR/CE/CR, HTTP 4xx).
    Refused,
}

/// A failure's reason fit for logs and alert notifications: a receiver's refusal keeps
/// its code and drops the text it sent with it (MSA-3 may quote the message).
pub fn reason_for_logs(reason: &str) -> &str {
    if reason.starts_with("the receiver answered") {
        reason.split(':').next().unwrap_or(reason)
    } else {
        reason
    }
}

impl DeliveryError {
    /// A failure worth retrying.
    pub fn transient(reason: impl Into<String>) -> DeliveryError {
        DeliveryError {
            kind: FailureKind::Transient,
            reason: reason.into(),
            answer: None,
        }
    }

    /// The receiver refused the message and said so in `answer`.
    pub fn refused(reason: impl Into<String>, answer: impl Into<String>) -> DeliveryError {
        DeliveryError {
            kind: FailureKind::Refused,
            reason: reason.into(),
            answer: Some(answer.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_refusal_loses_the_receivers_text_in_logs() {
        assert_eq!(
            super::reason_for_logs("the receiver answered AE: no patient DOE^JANE"),
            "the receiver answered AE"
        );
        assert_eq!(
            super::reason_for_logs("cannot connect to 127.0.0.1:1: refused"),
            "cannot connect to 127.0.0.1:1: refused"
        );
    }
}
