//! Message-level conversion: dispatch by MSH-9, walk the segments in order,
//! link the resources, add MessageHeader and Provenance.

use hl7v2::{Element, Message, Segment};
use serde_json::Value;

use crate::bundle::{Bundle, Entry};
use crate::datatypes::{self as dt, comp, text};
use crate::error::{ConvertError, ConvertErrorKind};
use crate::ids::stable_id;
use crate::json::{Obj, reference, string};
use crate::segments;
use crate::{Identifier, Options};

/// The message families the converter knows, by what they carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Adt,
    Order,
    Result,
    PharmacyOrder,
    PharmacyAdministration,
    Vaccination,
    Schedule,
    Document,
    Financial,
    Ack,
    /// REF/RRI patient referrals (RF1, PRD).
    Referral,
    /// PPR patient problems (PRB).
    Problem,
    /// A type the guide has no message map for: converted from the
    /// segments that have one, with an OperationOutcome naming the rest.
    Other,
}

/// MSH-9 to a message family: the guide's message maps (`messages/*.csv`)
/// by structure, other events of a family by their shared structure.
pub fn kind_of(code: &str, event: &str, structure: &str) -> Option<Kind> {
    let by_structure = match structure.get(..3) {
        Some("ADT") => Some(Kind::Adt),
        Some("ORU") | Some("OUL") => Some(Kind::Result),
        Some("ORM") | Some("OML") | Some("OMG") => Some(Kind::Order),
        Some("RDE") | Some("RDS") => Some(Kind::PharmacyOrder),
        Some("RAS") => Some(Kind::PharmacyAdministration),
        Some("VXU") => Some(Kind::Vaccination),
        Some("SIU") => Some(Kind::Schedule),
        Some("MDM") => Some(Kind::Document),
        Some("DFT") | Some("BAR") => Some(Kind::Financial),
        Some("ACK") => Some(Kind::Ack),
        Some("REF") | Some("RRI") => Some(Kind::Referral),
        Some("PPR") => Some(Kind::Problem),
        _ => None,
    };
    if structure.len() >= 3 && by_structure.is_some() {
        return by_structure;
    }
    match code {
        "ADT" => Some(Kind::Adt),
        "ORU"
            if event.is_empty()
                || event == "R01"
                || event == "R30"
                || event == "R31"
                || event == "R32" =>
        {
            Some(Kind::Result)
        }
        "OUL" => Some(Kind::Result),
        "ORM" | "OML" | "OMG" => Some(Kind::Order),
        "RDE" | "RDS" => Some(Kind::PharmacyOrder),
        "RAS" => Some(Kind::PharmacyAdministration),
        "VXU" => Some(Kind::Vaccination),
        "SIU" => Some(Kind::Schedule),
        "MDM" => Some(Kind::Document),
        "DFT" | "BAR" => Some(Kind::Financial),
        "ACK" => Some(Kind::Ack),
        "REF" | "RRI" => Some(Kind::Referral),
        "PPR" => Some(Kind::Problem),
        _ => None,
    }
}

/// The family of a parsed message, from its MSH-9.
pub fn kind_of_message(message: &Message<'_>) -> Option<Kind> {
    let msh9 = message.segment(0).field(9)?;
    kind_of(&comp(msh9, 1), &comp(msh9, 2), &comp(msh9, 3))
}

/// State of the order group being read (ORC/OBR and what follows them).
#[derive(Default)]
pub struct OrderGroup<'m> {
    pub orc: Option<Segment<'m>>,
    /// The ORC has been used by an OBR/RXE/RXA (a second one gets it too).
    pub service_request: Option<usize>,
    pub report: Option<usize>,
    /// MedicationRequest, MedicationAdministration or Immunization.
    pub medication: Option<usize>,
    pub observations: Vec<usize>,
    pub specimens: Vec<String>,
    /// The key of the order, for the ids of its observations.
    pub key: String,
    /// The isolate a child order's results were derived from (OBR-26/29).
    pub parent_observation: Option<usize>,
}

/// An observation of the message, for a child order to find it by its
/// order's numbers (OBR-29) and its OBX-3 code and OBX-4 sub-id (OBR-26): a
/// microbiology isolate. Read only when a child order asks.
pub struct ResultKey<'m> {
    pub request: usize,
    pub obx: Segment<'m>,
    pub observation: usize,
}

/// Everything one conversion carries along.
pub struct Ctx<'m> {
    pub msg: &'m Message<'m>,
    pub options: &'m Options,
    pub kind: Kind,
    /// The trigger event (MSH-9.2, else EVN-1).
    pub event: String,
    /// Sending application and facility, to scope keys that are only unique
    /// per sender.
    pub sender: String,
    pub entries: Vec<Entry>,
    pub patient: Option<usize>,
    /// The Patient of the latest PID: the survivor an MRG after it merges
    /// into (an A40 may carry several PID/MRG pairs).
    pub latest_pid: Option<usize>,
    pub encounter: Option<usize>,
    pub group: OrderGroup<'m>,
    /// Where the next NTE goes: an entry and its annotation field.
    pub note_target: Option<(usize, &'static str)>,
    /// Index of the current segment (0-based), for keys and errors.
    pub segment_index: usize,
    /// Index of the DocumentReference for MDM content.
    pub document: Option<usize>,
    pub appointment: Option<usize>,
    /// The key of an Appointment read before the PID (SCH comes first in
    /// SIU): its id is taken again within the patient once the PID is read.
    pub appointment_key: Option<String>,
    pub account: Option<usize>,
    pub recorded: Option<String>,
    pub operator: Option<Value>,
    /// Text lines of an MDM document, gathered into one attachment.
    pub document_text: Vec<String>,
    /// The observations made so far, for child orders to find their parent.
    pub results: Vec<ResultKey<'m>>,
    /// The segment index each entry was first made from, to name both
    /// segments when two records get one id.
    pub origins: Vec<usize>,
    /// The first two segments that made one record, reported instead of
    /// a Bundle.
    pub collision: Option<(&'static str, usize, usize)>,
    /// Segments (indices) that no map reads, in message order.
    pub skipped: Vec<usize>,
    /// The insured of the latest IN1 (the Patient or a RelatedPerson), for
    /// the IN2 after it.
    pub insured: Option<usize>,
    /// The latest Coverage, for the IN3 after it.
    pub coverage: Option<usize>,
    /// The referral ServiceRequest (RF1), for the PRDs after it.
    pub referral: Option<usize>,
}

/// Resources one v2 record makes each: a second one with the same id in a
/// message is a collision, never a merge. The others (Patient,
/// Practitioner, Encounter, ...) are mentioned again by later segments.
const ONE_PER_RECORD: &[&str] = &[
    "Observation",
    "DiagnosticReport",
    "ServiceRequest",
    "Immunization",
    "MedicationRequest",
    "MedicationAdministration",
    "MedicationDispense",
    "ChargeItem",
    "DocumentReference",
    "Appointment",
];

impl<'m> Ctx<'m> {
    /// Adds a resource, or merges it into the one with the same id (first
    /// values win, so a second mention never erases the first). A record
    /// (see [`ONE_PER_RECORD`]) is never merged: the second is noted as a
    /// collision and the message fails. Returns the entry's index.
    pub fn add(&mut self, resource_type: &'static str, id: String, resource: Obj) -> usize {
        if let Some(i) = self.find(resource_type, &id) {
            if ONE_PER_RECORD.contains(&resource_type) {
                if self.collision.is_none() {
                    self.collision = Some((resource_type, self.origins[i], self.segment_index));
                }
                return i;
            }
            if let Value::Object(existing) = &mut self.entries[i].resource {
                for (k, v) in resource.0 {
                    existing.entry(k).or_insert(v);
                }
            }
            return i;
        }
        let mut resource = resource;
        resource
            .0
            .insert("resourceType".into(), Value::from(resource_type));
        resource.0.insert("id".into(), Value::from(id.as_str()));
        self.entries.push(Entry {
            resource_type,
            id,
            patient_id: None,
            resource: Value::Object(resource.0),
        });
        self.origins.push(self.segment_index);
        self.entries.len() - 1
    }

    /// The id of a record known by `key` within the message's patient: keys
    /// such as order numbers are only unique per patient (placeholders like
    /// `9999` are common), so two patients never share a record. Without a
    /// patient (yet) the sender scopes it.
    pub fn record_id(&self, resource_type: &str, key: &[&str]) -> String {
        let scope = match self.patient {
            Some(p) => self.entries[p].id.as_str(),
            None => self.sender.as_str(),
        };
        match key {
            [one] => stable_id(resource_type, &[scope, one]),
            _ => {
                let mut parts = Vec::with_capacity(key.len() + 1);
                parts.push(scope);
                parts.extend_from_slice(key);
                stable_id(resource_type, &parts)
            }
        }
    }

    /// `key` and its [`Ctx::record_id`], numbered by its place among twins
    /// when the message repeats it (two OBX|1 for one test, two doses of one
    /// vaccine on one day), so each v2 record stays its own resource.
    pub fn unused_record_key(&self, resource_type: &str, key: String) -> (String, String) {
        let id = self.record_id(resource_type, &[&key]);
        if self.find(resource_type, &id).is_none() {
            return (key, id);
        }
        (2..)
            .map(|twin| {
                let key = format!("{key}|{twin}");
                let id = self.record_id(resource_type, &[&key]);
                (key, id)
            })
            .find(|(_, id)| self.find(resource_type, id).is_none())
            .unwrap_or_default()
    }

    pub fn find(&self, resource_type: &str, id: &str) -> Option<usize> {
        self.entries
            .iter()
            .position(|e| e.resource_type == resource_type && e.id == id)
    }

    /// The JSON object of entry `i`, to add to it.
    pub fn resource_mut(&mut self, i: usize) -> &mut serde_json::Map<String, Value> {
        match &mut self.entries[i].resource {
            Value::Object(o) => o,
            // Entries are always built from objects in `add`.
            other => {
                *other = Value::Object(serde_json::Map::new());
                match other {
                    Value::Object(o) => o,
                    _ => unreachable!("just assigned an object"),
                }
            }
        }
    }

    /// Sets `key` on entry `i` unless the value is blank or the key is set.
    pub fn set_on(&mut self, i: usize, key: &str, value: impl Into<Value>) {
        let value = value.into();
        if crate::json::is_blank(&value) {
            return;
        }
        self.resource_mut(i).entry(key.to_string()).or_insert(value);
    }

    /// Appends to the array `key` of entry `i`.
    pub fn push_on(&mut self, i: usize, key: &str, value: impl Into<Value>) {
        let value = value.into();
        if crate::json::is_blank(&value) {
            return;
        }
        let target = self.resource_mut(i);
        match target.get_mut(key) {
            Some(Value::Array(items)) => {
                if !items.contains(&value) {
                    items.push(value)
                }
            }
            _ => {
                target.insert(key.to_string(), Value::Array(vec![value]));
            }
        }
    }

    pub fn reference_to(&self, i: usize) -> Value {
        reference(self.entries[i].resource_type, &self.entries[i].id)
    }

    pub fn patient_reference(&self) -> Option<Value> {
        self.patient.map(|i| self.reference_to(i))
    }

    pub fn encounter_reference(&self) -> Option<Value> {
        self.encounter.map(|i| self.reference_to(i))
    }

    /// A key unique to this message's segment, for resources with no
    /// business identifier.
    pub fn message_key(&self) -> String {
        format!(
            "{}|{}|{}",
            self.sender,
            self.msg.control_id(),
            self.segment_index
        )
    }

    /// `XCN[Practitioner]`: a Practitioner keyed on XCN.1 and its authority
    /// (XCN.9), else on its name; returns a reference with the name as display.
    pub fn practitioner(&mut self, xcn: Element<'_>) -> Option<Value> {
        let id_value = comp(xcn, 1);
        let name = dt::xcn_name(xcn);
        if id_value.is_empty() && name.is_null() {
            return None;
        }
        let system = dt::hd_sub_uri(xcn, 9, self.options);
        let mut practitioner = Obj::new();
        if !id_value.is_empty() {
            let mut identifier = Obj::new();
            identifier.set(
                "system",
                system.clone().map(Value::from).unwrap_or(Value::Null),
            );
            identifier.text("value", &id_value);
            identifier.set("type", dt::identifier_type(&comp(xcn, 13)));
            practitioner.push("identifier", identifier);
        }
        practitioner.push("name", name.clone());
        let key = if id_value.is_empty() {
            format!("name|{}", name)
        } else {
            format!("{}|{}", system.unwrap_or_default(), id_value)
        };
        let id = stable_id("Practitioner", &[&key]);
        let i = self.add("Practitioner", id, practitioner);
        let mut r = Obj(match self.reference_to(i) {
            Value::Object(o) => o,
            _ => serde_json::Map::new(),
        });
        let display = [sub_text(xcn, 3), sub_text(xcn, 2)]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        r.text("display", &display);
        Some(r.build())
    }

    /// The first Practitioner of a repeating XCN field.
    pub fn practitioner_field(&mut self, field: Option<Element<'_>>) -> Option<Value> {
        dt::reps(field).next().and_then(|r| self.practitioner(r))
    }

    /// `XON[Organization]` / `HD[Organization]`: an Organization keyed on its
    /// identifier (XON.10 with XON.6 authority) or name.
    pub fn organization(&mut self, name: &str, identifier: Value) -> Option<Value> {
        let name = name.trim();
        if name.is_empty() && identifier.is_null() {
            return None;
        }
        let key = if identifier.is_null() {
            format!("name|{name}")
        } else {
            identifier.to_string()
        };
        let mut org = Obj::new();
        org.push("identifier", identifier);
        org.text("name", name);
        let id = stable_id("Organization", &[&key]);
        let i = self.add("Organization", id, org);
        let mut r = Obj(match self.reference_to(i) {
            Value::Object(o) => o,
            _ => serde_json::Map::new(),
        });
        r.text("display", name);
        Some(r.build())
    }

    /// An XON field's first repetition as an Organization.
    pub fn organization_xon(&mut self, xon: Element<'_>) -> Option<Value> {
        let id_value = comp(xon, 10);
        let id_value = if id_value.is_empty() {
            comp(xon, 3)
        } else {
            id_value
        };
        let identifier = if id_value.is_empty() {
            Value::Null
        } else {
            Obj::new()
                .with(
                    "system",
                    dt::hd_sub_uri(xon, 6, self.options)
                        .map(Value::from)
                        .unwrap_or(Value::Null),
                )
                .with("value", &*id_value)
                .build()
        };
        self.organization(&comp(xon, 1), identifier)
    }

    /// `PL[Location]`: a Location keyed on facility, point of care, room and
    /// bed, with the parts as name and physical type of the most specific.
    pub fn location(&mut self, pl: Element<'_>) -> Option<Value> {
        let name = dt::location_text(pl);
        if name.is_empty() {
            return None;
        }
        let facility = dt::sub(pl, 4, 1);
        let key: Vec<String> = [4, 1, 2, 3]
            .into_iter()
            .map(|n| dt::sub(pl, n, 1).into_owned())
            .collect();
        let mut loc = Obj::new();
        loc.text("name", &name);
        loc.set("mode", "instance");
        let physical = if !dt::sub(pl, 3, 1).is_empty() {
            Some(("bd", "Bed"))
        } else if !dt::sub(pl, 2, 1).is_empty() {
            Some(("ro", "Room"))
        } else if !dt::sub(pl, 1, 1).is_empty() {
            Some(("wa", "Ward"))
        } else {
            None
        };
        if let Some((code, display)) = physical {
            loc.set(
                "physicalType",
                Obj::new().with(
                    "coding",
                    vec![
                        Obj::new()
                            .with(
                                "system",
                                "http://terminology.hl7.org/CodeSystem/location-physical-type",
                            )
                            .with("code", code)
                            .with("display", display)
                            .build(),
                    ],
                ),
            );
        }
        if !facility.is_empty() {
            let org = self.organization(&facility, Value::Null);
            loc.set("managingOrganization", org.unwrap_or(Value::Null));
        }
        let key_refs: Vec<&str> = key.iter().map(String::as_str).collect();
        let id = stable_id("Location", &key_refs);
        let i = self.add("Location", id, loc);
        let mut r = Obj(match self.reference_to(i) {
            Value::Object(o) => o,
            _ => serde_json::Map::new(),
        });
        r.text("display", &name);
        Some(r.build())
    }

    /// The entry a reference made by this conversion points at.
    pub fn referenced(&self, reference: &Value) -> Option<usize> {
        let (resource_type, id) = reference["reference"].as_str()?.split_once('/')?;
        self.find(resource_type, id)
    }

    /// A PractitionerRole: `practitioner` acting as `code` (table 0912) for
    /// `organization`.
    pub fn practitioner_role(
        &mut self,
        practitioner: Value,
        organization: Option<Value>,
        code: &str,
        display: &str,
    ) -> Value {
        let key = [
            practitioner["reference"].as_str().unwrap_or_default(),
            organization
                .as_ref()
                .and_then(|o| o["reference"].as_str())
                .unwrap_or_default(),
            code,
        ];
        let id = stable_id("PractitionerRole", &key);
        let mut role = Obj::new();
        role.set("practitioner", practitioner);
        role.set("organization", organization.unwrap_or(Value::Null));
        role.push(
            "code",
            Obj::new().with(
                "coding",
                vec![
                    Obj::new()
                        .with("system", "http://terminology.hl7.org/CodeSystem/v2-0912")
                        .with("code", code)
                        .with("display", display)
                        .build(),
                ],
            ),
        );
        let i = self.add("PractitionerRole", id, role);
        self.reference_to(i)
    }

    /// `EI[Device]`: a Device known by its identifier (OBX-18 equipment).
    pub fn device(&mut self, ei: Element<'_>) -> Option<Value> {
        let identifier = dt::identifier_ei(ei, self.options);
        if identifier.is_null() {
            return None;
        }
        let id = stable_id("Device", &[&identifier.to_string()]);
        let device = Obj::new().with("identifier", vec![identifier]);
        let i = self.add("Device", id, device);
        Some(self.reference_to(i))
    }

    /// Adds an NTE's text to the current note target.
    pub fn add_note(&mut self, note: Value) {
        if let Some((i, field)) = self.note_target {
            if field == "comment" || field == "description" {
                // Appointment.comment / Account.description are one string:
                // append lines.
                let text = note["text"].as_str().unwrap_or_default().to_string();
                let target = self.resource_mut(i);
                let joined = match target.get(field).and_then(Value::as_str) {
                    Some(existing) => format!("{existing}\n{text}"),
                    None => text,
                };
                if !joined.trim().is_empty() {
                    target.insert(field.to_string(), Value::String(joined));
                }
            } else {
                self.push_on(i, field, note);
            }
        }
    }
}

fn sub_text(e: Element<'_>, n: usize) -> String {
    dt::sub(e, n, 1).into_owned()
}

/// Converts one message.
pub fn convert(
    message: &Message<'_>,
    options: &Options,
    enterprise: Option<&Identifier>,
) -> Result<Bundle, ConvertError> {
    let msh = message.segment(0);
    let field = |n: usize| msh.field(n);
    let msh9 = field(9);
    let code = msh9.map(|f| comp(f, 1)).unwrap_or_default();
    let mut event = msh9.map(|f| comp(f, 2)).unwrap_or_default();
    let structure = msh9.map(|f| comp(f, 3)).unwrap_or_default();
    let kind = kind_of(&code, &event, &structure).unwrap_or(Kind::Other);
    if event.is_empty() {
        if let Some(evn) = message.find_segment(b"EVN", 1) {
            event = evn
                .field(1)
                .map(text)
                .unwrap_or_default()
                .into_owned()
                .into();
        }
    }
    // MSH-7's offset is the sender's word on its clock: it comes before the
    // configured zone for the message's other times.
    let message_offset = msh
        .field(7)
        .and_then(|f| crate::datetime::parse(&comp(f, 1)).and_then(|t| t.offset));
    let with_message_offset;
    let options = match message_offset {
        Some(offset) => {
            with_message_offset = Options {
                timezone: Some(crate::Zone::Fixed(offset)),
                ..options.clone()
            };
            &with_message_offset
        }
        None => options,
    };
    let sender = format!(
        "{}|{}",
        field(3).map(text).unwrap_or_default(),
        field(4).map(text).unwrap_or_default()
    );
    let mut ctx = Ctx {
        msg: message,
        options,
        kind,
        event: event.into_owned(),
        sender,
        entries: Vec::with_capacity(16),
        patient: None,
        latest_pid: None,
        encounter: None,
        group: OrderGroup::default(),
        note_target: None,
        segment_index: 0,
        document: None,
        appointment: None,
        appointment_key: None,
        account: None,
        recorded: None,
        operator: None,
        document_text: Vec::new(),
        results: Vec::new(),
        origins: Vec::with_capacity(16),
        collision: None,
        skipped: Vec::new(),
        insured: None,
        coverage: None,
        referral: None,
    };
    let msg = ctx.msg;
    for (index, segment) in msg.segments().enumerate().skip(1) {
        ctx.segment_index = index;
        let mapped = segments::apply(&mut ctx, segment.clone()).map_err(|mut e| {
            if e.segment.is_none() {
                e.segment = Some((index + 1, segment.name_str().to_string()));
            }
            e
        })?;
        if !mapped {
            ctx.skipped.push(index);
        }
    }
    segments::finish(&mut ctx);
    if kind == Kind::Other {
        // Several patients (a query response): each record is linked to its
        // own; the message's subject is the first.
        link_to_patient_and_encounter(&mut ctx);
        if let Some(first) = ctx
            .entries
            .iter()
            .position(|e| e.resource_type == "Patient")
        {
            ctx.patient = Some(first);
        }
    }
    scope_appointment_to_patient(&mut ctx);
    if let Some((resource_type, first, second)) = ctx.collision {
        return Err(ConvertError {
            kind: ConvertErrorKind::DuplicateRecord {
                resource_type,
                first_segment: first + 1,
            },
            segment: Some((second + 1, segment_name(message, second))),
        });
    }
    if let Some(p) = ctx.patient {
        if let Some(enterprise) = enterprise {
            let identifier = Obj::new()
                .with("system", enterprise.system.as_str())
                .with("value", enterprise.value.as_str())
                .with("use", "official")
                .build();
            ctx.push_on(p, "identifier", identifier);
        }
    }
    if kind == Kind::Other {
        segments::header::not_covered(&mut ctx);
    } else {
        needs_patient(&ctx)?;
    }
    link_to_patient_and_encounter(&mut ctx);
    segments::header::finish(&mut ctx);
    let patient_id = ctx.patient.map(|i| ctx.entries[i].id.clone());
    for entry in &mut ctx.entries {
        entry.patient_id = match entry.resource_type {
            // Each Patient (a merge message has several) files under itself.
            "Patient" => Some(entry.id.clone()),
            "Practitioner" | "PractitionerRole" | "Organization" | "Location" | "Device"
            | "MessageHeader" | "Provenance" | "OperationOutcome" => None,
            // A response may list several patients: each record files under
            // the one it names.
            _ if kind == Kind::Other => ["subject", "patient", "beneficiary"]
                .iter()
                .find_map(|k| {
                    entry.resource[k]["reference"]
                        .as_str()?
                        .strip_prefix("Patient/")
                })
                .map(str::to_string)
                .or_else(|| patient_id.clone()),
            _ => patient_id.clone(),
        };
    }
    let control_id = message.control_id();
    let bundle_id = stable_id("Bundle", &[&ctx.sender, &control_id]);
    let identifier = if control_id.trim().is_empty() {
        Value::Null
    } else {
        Obj::new()
            .with(
                "system",
                msh.field(4)
                    .and_then(|f| dt::hd_element_uri(f, options))
                    .or_else(|| msh.field(3).and_then(|f| dt::hd_element_uri(f, options)))
                    .map(Value::from)
                    .unwrap_or(Value::Null),
            )
            .with("value", string(&control_id))
            .build()
    };
    let timestamp = msh
        .field(7)
        .and_then(|f| crate::datetime::to_instant(&comp(f, 1), options.timezone.as_ref()));
    Ok(Bundle {
        id: bundle_id,
        timestamp,
        identifier,
        entries: ctx.entries,
        patient_id,
    })
}

/// SIU sends SCH before PID, so the Appointment was keyed before its patient
/// was known; schedulers reuse ids too (`0`), so it is keyed again within the
/// patient, like every other record. Nothing refers to it yet.
fn scope_appointment_to_patient(ctx: &mut Ctx<'_>) {
    let (Some(a), Some(key), Some(_)) = (ctx.appointment, ctx.appointment_key.take(), ctx.patient)
    else {
        return;
    };
    let id = ctx.record_id("Appointment", &[&key]);
    if ctx.find("Appointment", &id).is_some() {
        return;
    }
    ctx.resource_mut(a)
        .insert("id".into(), Value::from(id.as_str()));
    ctx.entries[a].id = id;
}

fn segment_name(message: &Message<'_>, index: usize) -> String {
    message
        .segments()
        .nth(index)
        .map(|s| s.name_str().to_string())
        .unwrap_or_default()
}

/// Resources that FHIR requires to point at a patient.
pub const PATIENT_REQUIRED: &[&str] = &[
    "AllergyIntolerance",
    "Condition",
    "Procedure",
    "Immunization",
    "MedicationRequest",
    "MedicationAdministration",
    "ServiceRequest",
    "Coverage",
    "ChargeItem",
    "RelatedPerson",
];

fn needs_patient(ctx: &Ctx<'_>) -> Result<(), ConvertError> {
    if ctx.patient.is_some() {
        return Ok(());
    }
    if let Some(e) = ctx
        .entries
        .iter()
        .find(|e| PATIENT_REQUIRED.contains(&e.resource_type))
    {
        return Err(ConvertError::new(ConvertErrorKind::Invalid(format!(
            "the message has no PID segment, and FHIR requires a patient for its {}",
            e.resource_type
        ))));
    }
    Ok(())
}

/// Sets the subject/patient and encounter references the segments could not
/// set when they were read (the PID may come after the SCH, the PV1 after
/// the ORC).
pub(crate) fn link_to_patient_and_encounter(ctx: &mut Ctx<'_>) {
    let patient = ctx.patient_reference();
    let encounter = ctx.encounter_reference();
    for i in 0..ctx.entries.len() {
        let rt = ctx.entries[i].resource_type;
        let patient_field = match rt {
            "Observation"
            | "DiagnosticReport"
            | "ServiceRequest"
            | "Specimen"
            | "Condition"
            | "Procedure"
            | "Encounter"
            | "MedicationRequest"
            | "MedicationAdministration"
            | "MedicationDispense"
            | "ChargeItem"
            | "DocumentReference" => Some("subject"),
            "AllergyIntolerance" | "Immunization" | "RelatedPerson" => Some("patient"),
            "Coverage" => Some("beneficiary"),
            _ => None,
        };
        if let (Some(field), Some(p)) = (patient_field, &patient) {
            ctx.set_on(i, field, p.clone());
        }
        if rt == "Account" {
            if let Some(p) = &patient {
                ctx.push_on(i, "subject", p.clone());
            }
        }
        if rt == "Coverage" {
            let has_payor = ctx.entries[i].resource.get("payor").is_some();
            if !has_payor {
                if let Some(p) = &patient {
                    ctx.push_on(i, "payor", p.clone());
                }
            }
        }
        let encounter_field = match rt {
            "Observation" | "DiagnosticReport" | "ServiceRequest" | "Condition" | "Procedure"
            | "MedicationRequest" | "Immunization" | "AllergyIntolerance" => Some("encounter"),
            "MedicationAdministration" | "MedicationDispense" | "ChargeItem" => Some("context"),
            _ => None,
        };
        if let (Some(field), Some(e)) = (encounter_field, &encounter) {
            ctx.set_on(i, field, e.clone());
        }
        if rt == "Appointment" {
            if let Some(p) = &patient {
                let participant = Obj::new()
                    .with("actor", p.clone())
                    .with("status", "accepted");
                ctx.push_on(i, "participant", participant);
            }
        }
        if rt == "DocumentReference" {
            if let Some(e) = &encounter {
                let has_context = ctx.entries[i].resource.get("context").is_some();
                if !has_context {
                    ctx.set_on(i, "context", Obj::new().with("encounter", vec![e.clone()]));
                }
            }
        }
    }
}
