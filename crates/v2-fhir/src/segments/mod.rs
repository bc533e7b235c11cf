//! Segment maps: one function per segment (and target resource), after the
//! guide's `segments/*.csv` tables.

pub mod clinical;
pub mod documents;
pub mod encounter;
pub mod financial;
pub mod header;
pub mod orders;
pub mod patient;
pub mod pharmacy;
pub mod scheduling;

use hl7v2::Segment;

use crate::convert::{Ctx, Kind};
use crate::error::ConvertError;

/// Applies one segment to the conversion.
pub fn apply<'m>(ctx: &mut Ctx<'m>, seg: Segment<'m>) -> Result<(), ConvertError> {
    match seg.name() {
        b"EVN" => header::evn(ctx, &seg),
        b"MSA" => header::msa(ctx, &seg),
        b"ERR" => header::err(ctx, &seg),
        b"PID" => patient::pid(ctx, &seg),
        b"PD1" => patient::pd1(ctx, &seg),
        b"NK1" => patient::nk1(ctx, &seg),
        b"MRG" => patient::mrg(ctx, &seg),
        b"PV1" => encounter::pv1(ctx, &seg),
        b"PV2" => encounter::pv2(ctx, &seg),
        b"AL1" => clinical::al1(ctx, &seg),
        b"IAM" => clinical::iam(ctx, &seg),
        b"DG1" => clinical::dg1(ctx, &seg),
        b"PR1" => clinical::pr1(ctx, &seg),
        b"IN1" => financial::in1(ctx, &seg),
        b"GT1" => financial::gt1(ctx, &seg),
        b"FT1" => financial::ft1(ctx, &seg),
        b"ORC" => orders::orc(ctx, seg),
        b"OBR" => orders::obr(ctx, &seg),
        b"OBX" if ctx.kind == Kind::Document => documents::obx(ctx, &seg),
        b"OBX" => orders::obx(ctx, &seg),
        b"NTE" => orders::nte(ctx, &seg),
        b"SPM" => orders::spm(ctx, &seg),
        b"TQ1" => orders::tq1(ctx, &seg),
        b"RXO" | b"RXE" => pharmacy::rxo_rxe(ctx, &seg),
        b"RXR" => pharmacy::rxr(ctx, &seg),
        b"RXA" => pharmacy::rxa(ctx, &seg),
        b"SCH" => scheduling::sch(ctx, &seg),
        b"AIS" | b"AIG" => scheduling::ais(ctx, &seg),
        b"AIL" => scheduling::ail(ctx, &seg),
        b"AIP" => scheduling::aip(ctx, &seg),
        b"TXA" => documents::txa(ctx, &seg),
        // Segments without a target here (SFT, ROL, RGS, Z-segments, ...) are
        // kept in the message store; they add nothing to the resources.
        _ => Ok(()),
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
