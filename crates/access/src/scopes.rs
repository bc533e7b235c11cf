//! SMART on FHIR scopes (`system/*.read`, `patient/Observation.read`, `user/*.*`, and
//! the v2 forms such as `patient/Observation.rs`), parsed into what a FHIR route checks.

use std::fmt;

/// Whose data a scope reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScopeContext {
    /// One patient in context (the token's `patient` claim).
    Patient,
    /// What the signed-in user may see.
    User,
    /// A backend system, no user.
    System,
}

/// What a FHIR request does, as scopes name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FhirAccess {
    /// read, vread, history, search (`.read`, or `r`/`s` in v2 scopes).
    Read,
    /// create, update, delete (`.write`, or `c`/`u`/`d`).
    Write,
}

/// One SMART scope.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    /// `patient`, `user` or `system`.
    pub context: ScopeContext,
    /// The resource type, or None for `*`.
    pub resource: Option<String>,
    /// Whether it grants reads.
    pub read: bool,
    /// Whether it grants writes.
    pub write: bool,
}

impl Scope {
    /// Parses one scope; None for scopes that are not SMART resource scopes
    /// (`openid`, `profile`, `launch`, ...), which grant no FHIR access.
    pub fn parse(text: &str) -> Option<Scope> {
        let (context, rest) = text.split_once('/')?;
        let context = match context {
            "patient" => ScopeContext::Patient,
            "user" => ScopeContext::User,
            "system" => ScopeContext::System,
            _ => return None,
        };
        // v2 scopes may carry a query (`?category=...`): it only narrows, and is not
        // understood here, so such a scope grants nothing rather than more.
        if rest.contains('?') {
            return None;
        }
        let (resource, access) = rest.split_once('.')?;
        let resource = match resource {
            "*" => None,
            name if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphabetic()) => {
                Some(name.to_owned())
            }
            _ => return None,
        };
        let (read, write) = match access {
            "read" => (true, false),
            "write" => (false, true),
            "*" => (true, true),
            v2 if !v2.is_empty() && is_v2_permissions(v2) => {
                (v2.contains(['r', 's']), v2.contains(['c', 'u', 'd']))
            }
            _ => return None,
        };
        Some(Scope {
            context,
            resource,
            read,
            write,
        })
    }

    fn covers(&self, resource: &str, access: FhirAccess) -> bool {
        let kind = match access {
            FhirAccess::Read => self.read,
            FhirAccess::Write => self.write,
        };
        kind && self.resource.as_deref().is_none_or(|r| r == resource)
    }
}

/// The letters of a v2 scope in their required order (`cruds`), each at most once.
fn is_v2_permissions(text: &str) -> bool {
    let mut order = "cruds".chars();
    text.chars().all(|c| order.by_ref().any(|o| o == c))
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let context = match self.context {
            ScopeContext::Patient => "patient",
            ScopeContext::User => "user",
            ScopeContext::System => "system",
        };
        let access = match (self.read, self.write) {
            (true, true) => "*",
            (true, false) => "read",
            (false, true) => "write",
            (false, false) => "none",
        };
        write!(
            f,
            "{context}/{}.{access}",
            self.resource.as_deref().unwrap_or("*")
        )
    }
}

/// The SMART scopes a token carries, and its patient context (the SMART `patient`
/// launch claim) that `patient/` scopes are limited to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes {
    scopes: Vec<Scope>,
    patient: Option<String>,
}

impl Scopes {
    /// Parses a space-separated `scope` claim, keeping only SMART resource scopes.
    pub fn parse(claim: &str) -> Scopes {
        Scopes {
            scopes: claim
                .split_ascii_whitespace()
                .filter_map(Scope::parse)
                .collect(),
            patient: None,
        }
    }

    /// The scopes that limit a token's FHIR access, or None when the claim names no
    /// SMART resource scope at all (`openid profile`): such a token is limited by its
    /// roles alone. A claim naming resource scopes that do not parse (a v2 query,
    /// a misspelling) still limits: to the scopes that do, which may be none.
    pub fn limiting(claim: &str) -> Option<Scopes> {
        let names_resources = claim.split_ascii_whitespace().any(|scope| {
            ["patient/", "user/", "system/"]
                .iter()
                .any(|context| scope.starts_with(context))
        });
        names_resources.then(|| Scopes::parse(claim))
    }

    /// The same scopes with `patient` (a Patient id, `Patient/` optional) as their
    /// patient context; an empty one is no context.
    pub fn with_patient(mut self, patient: Option<&str>) -> Scopes {
        self.patient = patient
            .map(|p| p.trim().trim_start_matches("Patient/").to_owned())
            .filter(|p| !p.is_empty());
        self
    }

    /// The Patient id `patient/` scopes are limited to, if the token names one.
    pub fn patient(&self) -> Option<&str> {
        self.patient.as_deref()
    }

    /// The scopes as a space-separated claim (each in its v1 form).
    pub fn to_claim(&self) -> String {
        self.scopes
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The scopes kept.
    pub fn iter(&self) -> impl Iterator<Item = &Scope> {
        self.scopes.iter()
    }

    /// Whether any scope lets the request touch `resource` (a FHIR type such as
    /// `Observation`). A `patient/` scope also needs the route to confirm the resource
    /// is in the token's patient compartment: [`Scopes::patient_only`] says so.
    pub fn allows(&self, resource: &str, access: FhirAccess) -> bool {
        self.scopes.iter().any(|s| s.covers(resource, access))
    }

    /// True when every scope that allows this request is a `patient/` scope: the route
    /// must then limit it to the token's patient.
    pub fn patient_only(&self, resource: &str, access: FhirAccess) -> bool {
        self.allows(resource, access)
            && self
                .scopes
                .iter()
                .filter(|s| s.covers(resource, access))
                .all(|s| s.context == ScopeContext::Patient)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_scopes_parse() {
        let scope = Scope::parse("patient/Observation.read").unwrap();
        assert_eq!(scope.context, ScopeContext::Patient);
        assert_eq!(scope.resource.as_deref(), Some("Observation"));
        assert!(scope.read && !scope.write);
        let all = Scope::parse("user/*.*").unwrap();
        assert!(all.read && all.write && all.resource.is_none());
        assert_eq!(
            Scope::parse("system/*.read").unwrap().to_string(),
            "system/*.read"
        );
    }

    #[test]
    fn v2_scopes_parse_in_order_only() {
        let scope = Scope::parse("patient/Observation.rs").unwrap();
        assert!(scope.read && !scope.write);
        assert!(Scope::parse("user/Patient.cruds").unwrap().write);
        assert_eq!(Scope::parse("user/Patient.sr"), None);
        assert_eq!(Scope::parse("user/Patient.rr"), None);
    }

    #[test]
    fn other_scopes_grant_nothing() {
        for text in [
            "openid",
            "launch/patient",
            "admin/*.read",
            "patient/Observation.rs?category=laboratory",
            "patient/Obs-ervation.read",
            "patient/.read",
        ] {
            assert_eq!(Scope::parse(text), None, "{text}");
        }
    }

    #[test]
    fn scopes_decide_resource_and_access() {
        let scopes = Scopes::parse("openid patient/Observation.read system/Patient.read");
        assert!(scopes.allows("Observation", FhirAccess::Read));
        assert!(!scopes.allows("Observation", FhirAccess::Write));
        assert!(!scopes.allows("Condition", FhirAccess::Read));
        assert!(scopes.patient_only("Observation", FhirAccess::Read));
        assert!(!scopes.patient_only("Patient", FhirAccess::Read));
    }

    #[test]
    fn only_a_claim_naming_resource_scopes_limits() {
        assert_eq!(Scopes::limiting("openid profile launch/patient"), None);
        let broken = Scopes::limiting("openid patient/Observation.rs?category=lab").unwrap();
        assert!(!broken.allows("Observation", FhirAccess::Read));
        let scopes = Scopes::limiting("system/*.read")
            .unwrap()
            .with_patient(Some("Patient/p1"));
        assert!(scopes.allows("Condition", FhirAccess::Read));
        assert_eq!(scopes.patient(), Some("p1"));
        assert_eq!(scopes.to_claim(), "system/*.read");
        assert_eq!(Scopes::default().with_patient(Some(" ")).patient(), None);
    }
}
