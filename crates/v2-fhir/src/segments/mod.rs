//! Segment maps: one function per segment (and target resource), after the
//! guide's `segments/*.csv` tables.

pub mod clinical;
pub mod documents;
pub mod encounter;
pub mod financial;
pub mod header;
pub mod orders;
pub mod participants;
pub mod patient;
pub mod pharmacy;
pub mod referral;
pub mod scheduling;
pub mod status;

use hl7v2::Segment;

use crate::convert::{Ctx, Kind};
use crate::error::ConvertError;

/// A segment map: reads one segment into the conversion.
type Map = for<'m> fn(&mut Ctx<'m>, &Segment<'m>) -> Result<(), ConvertError>;

/// The map of a segment, by its name and the message family (an OBX is a
/// result, or a line of a document in MDM).
fn map_of(name: &[u8], kind: Kind) -> Option<Map> {
    let map: Map = match name {
        b"EVN" => header::evn as Map,
        b"MSA" => header::msa as Map,
        b"ERR" => header::err as Map,
        b"PID" => patient::pid as Map,
        b"PD1" => patient::pd1 as Map,
        b"NK1" => patient::nk1 as Map,
        b"MRG" => patient::mrg as Map,
        b"PDA" => status::pda as Map,
        b"DB1" => status::db1 as Map,
        b"ACC" => status::acc as Map,
        b"PV1" => encounter::pv1 as Map,
        b"PV2" => encounter::pv2 as Map,
        b"ROL" => participants::rol as Map,
        b"PRT" => participants::prt as Map,
        b"AL1" => clinical::al1 as Map,
        b"IAM" => clinical::iam as Map,
        b"DG1" => clinical::dg1 as Map,
        b"PR1" => clinical::pr1 as Map,
        b"PRB" => clinical::prb as Map,
        b"IN1" => financial::in1 as Map,
        b"IN2" => financial::in2 as Map,
        b"IN3" => financial::in3 as Map,
        b"GT1" => financial::gt1 as Map,
        b"FT1" => financial::ft1 as Map,
        b"RF1" => referral::rf1 as Map,
        b"PRD" => referral::prd as Map,
        b"ORC" => orders::orc as Map,
        b"OBR" => orders::obr as Map,
        b"OBX" if kind == Kind::Document => documents::obx as Map,
        b"OBX" => orders::obx as Map,
        b"NTE" => orders::nte as Map,
        b"SPM" => orders::spm as Map,
        b"TQ1" => orders::tq1 as Map,
        b"RXO" | b"RXE" => pharmacy::rxo_rxe as Map,
        b"RXR" => pharmacy::rxr as Map,
        b"RXA" => pharmacy::rxa as Map,
        b"RXD" => pharmacy::rxd as Map,
        b"SCH" => scheduling::sch as Map,
        b"AIS" | b"AIG" => scheduling::ais as Map,
        b"AIL" => scheduling::ail as Map,
        b"AIP" => scheduling::aip as Map,
        b"TXA" => documents::txa as Map,
        // Segments without a target here (SFT, RGS, QPD, Z-segments, ...)
        // are kept in the message store; `--coverage` and, for types the
        // guide does not map, the OperationOutcome name them.
        _ => return None,
    };
    Some(map)
}

/// True when Corridor maps segment `name` in messages of family `kind`.
pub fn has_map(name: &[u8], kind: Kind) -> bool {
    map_of(name, kind).is_some()
}

/// Applies one segment to the conversion; false when no map reads it.
pub fn apply<'m>(ctx: &mut Ctx<'m>, seg: Segment<'m>) -> Result<bool, ConvertError> {
    match map_of(seg.name(), ctx.kind) {
        Some(map) => map(ctx, &seg).map(|()| true),
        None => Ok(false),
    }
}

/// Ends the current order group: specimens read after the observations are
/// linked to them.
pub fn close_group(ctx: &mut Ctx<'_>) {
    let group = std::mem::take(&mut ctx.group);
    if !group.specimens.is_empty() {
        let refs: Vec<serde_json::Value> = group
            .specimens
            .iter()
            .map(|id| crate::json::reference("Specimen", id))
            .collect();
        for &o in &group.observations {
            ctx.set_on(o, "specimen", refs[0].clone());
        }
        for target in [group.report, group.service_request].into_iter().flatten() {
            for r in &refs {
                ctx.push_on(target, "specimen", r.clone());
            }
        }
    }
    if let Some(report) = group.report {
        for &o in &group.observations {
            let r = ctx.reference_to(o);
            ctx.push_on(report, "result", r);
        }
    }
}

/// Ends the message: the last order group, an ORC-only order, the
/// document's gathered text.
pub fn finish(ctx: &mut Ctx<'_>) {
    orders::finish_orc_only(ctx);
    close_group(ctx);
    documents::finish(ctx);
}
