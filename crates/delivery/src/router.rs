//! Running each destination's filters and transformers on a processed message, before it
//! is queued. This runs outside the write transaction: scripts may take milliseconds.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use hl7v2::OwnedMessage;
use steps::{Chain, Outcome};

use crate::destinations::{DestinationConfig, DestinationSettings};
use crate::error::ConfigError;

/// The destinations of one channel, with their compiled steps.
#[derive(Debug)]
pub struct Router {
    channel: Arc<str>,
    /// Each destination: its name, steps, FHIR converter and the channel it hands to.
    routes: Vec<Route>,
}

type Route = (Arc<str>, Chain, Option<FhirRoute>, Option<Arc<str>>);

/// How a destination that sends FHIR makes its payload: the converter, and for a `nats`
/// destination the subject template, whose subject is put before the Bundle (the entry
/// no longer holds the HL7 message it is built from).
#[derive(Debug)]
struct FhirRoute {
    converter: v2_fhir::Converter,
    subject: Option<crate::destinations::nats::SubjectTemplate>,
}

/// A message as each destination of a channel wants it; [`crate::enqueue_in`] queues it.
#[derive(Debug, Clone)]
pub struct Routed {
    /// The channel.
    pub channel: Arc<str>,
    /// One per destination, in configuration order.
    pub entries: Vec<RoutedEntry>,
}

/// What one destination does with a message.
#[derive(Debug, Clone)]
pub struct RoutedEntry {
    /// The destination's name.
    pub destination: Arc<str>,
    /// The bytes to deliver, or why there are none.
    pub outcome: RouteOutcome,
    /// The channel a channel destination hands the bytes to, in the processing
    /// transaction (no queue).
    pub hand_to: Option<Arc<str>>,
}

/// The result of a destination's filters and transformers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteOutcome {
    /// Deliver these bytes.
    Payload(Bytes),
    /// A filter of the destination dropped the message.
    Filtered {
        /// The filter's name.
        filter: String,
    },
    /// A step of the destination failed.
    Errored {
        /// Which step.
        step: String,
        /// What went wrong.
        error: String,
    },
}

impl Router {
    /// Compiles the steps of every destination of `channel`; relative files (tables,
    /// scripts) are found from `base`.
    pub fn compile(
        channel: &str,
        destinations: &[DestinationConfig],
        base: &Path,
    ) -> Result<Router, ConfigError> {
        let mut names = HashSet::new();
        let mut routes = Vec::with_capacity(destinations.len());
        for config in destinations {
            config.validate()?;
            if !names.insert(config.name.as_str()) {
                return Err(ConfigError::DuplicateName {
                    channel: channel.to_owned(),
                    destination: config.name.clone(),
                });
            }
            let chain =
                Chain::compile(&config.filters, &config.transforms, base).map_err(|error| {
                    ConfigError::Step {
                        destination: config.name.clone(),
                        error,
                    }
                })?;
            // A FHIR destination's payload is the message's transaction Bundle.
            let invalid = |reason: String| ConfigError::Invalid {
                destination: config.name.clone(),
                reason,
            };
            let fhir = match &config.settings {
                DestinationSettings::Fhir(fhir) => Some(FhirRoute {
                    converter: v2_fhir::Converter::new(
                        crate::destinations::fhir::converter_options(fhir).map_err(invalid)?,
                    ),
                    subject: None,
                }),
                DestinationSettings::Nats(nats)
                    if nats.payload == crate::destinations::NatsPayload::Fhir =>
                {
                    Some(FhirRoute {
                        converter: v2_fhir::Converter::new(v2_fhir::Options::default()),
                        subject: Some(nats.template().map_err(invalid)?),
                    })
                }
                _ => None,
            };
            let hand_to = match &config.settings {
                DestinationSettings::Channel(channel) => channel.channel.as_deref().map(Arc::from),
                _ => None,
            };
            routes.push((Arc::from(config.name.as_str()), chain, fhir, hand_to));
        }
        Ok(Router {
            channel: Arc::from(channel),
            routes,
        })
    }

    /// The channel these destinations belong to.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// The channels this channel's destinations hand messages to (`type = "channel"`).
    pub fn hands_to(&self) -> impl Iterator<Item = &str> {
        self.routes.iter().filter_map(|r| r.3.as_deref())
    }

    /// Whether the channel has no destination.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Runs every destination's steps on `message` (the channel's processed message).
    /// Destinations without steps share one serialization of it.
    pub fn route(&self, message: &OwnedMessage) -> Routed {
        self.route_with_enterprise_id(message, None)
    }

    /// [`Router::route`], adding `enterprise_id` (the patient index's identifier) to the
    /// Patient of the Bundles that FHIR destinations send.
    pub fn route_with_enterprise_id(
        &self,
        message: &OwnedMessage,
        enterprise_id: Option<&v2_fhir::Identifier>,
    ) -> Routed {
        let mut unchanged: Option<Bytes> = None;
        let entries = self
            .routes
            .iter()
            .map(|(destination, chain, fhir, hand_to)| {
                let outcome = if chain.is_empty() {
                    RouteOutcome::Payload(
                        unchanged
                            .get_or_insert_with(|| Bytes::from(message.to_bytes()))
                            .clone(),
                    )
                } else {
                    match chain.run(message.clone()) {
                        Outcome::Pass(changed) => {
                            RouteOutcome::Payload(Bytes::from(changed.to_bytes()))
                        }
                        Outcome::Filtered { filter } => RouteOutcome::Filtered { filter },
                        Outcome::Error { step, error } => RouteOutcome::Errored {
                            step,
                            error: error.to_string(),
                        },
                    }
                };
                RoutedEntry {
                    destination: Arc::clone(destination),
                    outcome: to_fhir(fhir.as_ref(), outcome, enterprise_id),
                    hand_to: hand_to.clone(),
                }
            })
            .collect();
        Routed {
            channel: Arc::clone(&self.channel),
            entries,
        }
    }

    /// Routes bytes the channel did not change: destinations without steps take them as
    /// they are, the others parse them first.
    pub fn route_bytes(&self, raw: &[u8]) -> Routed {
        let entries = self
            .routes
            .iter()
            .map(|(destination, chain, fhir, hand_to)| {
                let outcome = if chain.is_empty() {
                    RouteOutcome::Payload(Bytes::copy_from_slice(raw))
                } else {
                    match OwnedMessage::parse(raw) {
                        Ok(message) => match chain.run(message) {
                            Outcome::Pass(changed) => {
                                RouteOutcome::Payload(Bytes::from(changed.to_bytes()))
                            }
                            Outcome::Filtered { filter } => RouteOutcome::Filtered { filter },
                            Outcome::Error { step, error } => RouteOutcome::Errored {
                                step,
                                error: error.to_string(),
                            },
                        },
                        Err(err) => RouteOutcome::Errored {
                            step: "parse".into(),
                            error: err.to_string(),
                        },
                    }
                };
                RoutedEntry {
                    destination: Arc::clone(destination),
                    outcome: to_fhir(fhir.as_ref(), outcome, None),
                    hand_to: hand_to.clone(),
                }
            })
            .collect();
        Routed {
            channel: Arc::clone(&self.channel),
            entries,
        }
    }
}

/// For a FHIR destination, the message's transaction Bundle as JSON in place of the
/// message: a type the converter does not handle is filtered, a failed conversion is an
/// error of the `fhir` step.
fn to_fhir(
    route: Option<&FhirRoute>,
    outcome: RouteOutcome,
    enterprise_id: Option<&v2_fhir::Identifier>,
) -> RouteOutcome {
    let (Some(route), RouteOutcome::Payload(bytes)) = (route, &outcome) else {
        return outcome;
    };
    let converter = &route.converter;
    let message = match hl7v2::Message::parse(bytes.as_ref()) {
        Ok(message) => message,
        Err(error) => {
            return RouteOutcome::Errored {
                step: "fhir".into(),
                error: error.to_string(),
            };
        }
    };
    if !v2_fhir::Converter::supports(&message) {
        return RouteOutcome::Filtered {
            filter: "fhir (a message type without a FHIR mapping)".into(),
        };
    }
    let converted = match enterprise_id {
        Some(id) => converter.convert_with_enterprise_id(&message, id),
        None => converter.convert(&message),
    };
    match converted {
        Ok(bundle) => match &route.subject {
            Some(template) => RouteOutcome::Payload(crate::destinations::nats::fhir_entry(
                &template.subject(&message),
                bundle.to_json_string().as_bytes(),
            )),
            None => RouteOutcome::Payload(Bytes::from(bundle.to_json_string())),
        },
        Err(error) => RouteOutcome::Errored {
            step: "fhir".into(),
            error: error.to_string(),
        },
    }
}
