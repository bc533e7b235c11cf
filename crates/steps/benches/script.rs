//! What a script step costs per message: a typical transformer (read, change, add a
//! segment field) run by `Script::run` on a 1.5 KB ORU, and the same work done by
//! declarative steps for comparison. The API used here is the same before and after
//! each script got a context of its own, so the bench runs on both.
//! Run: `cargo bench -p steps --bench script`

use criterion::{Criterion, criterion_group, criterion_main};
use hl7v2::OwnedMessage;
use steps::{Limits, Script};

const ORU: &[u8] = b"MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240101120000||ORU^R01^ORU_R01|C1|P|2.5.1\r\
PID|1||123456^^^HOSP^MR~987654321^^^SSA^SS||DOE^JANE^Q||19800101|F|||1 MAIN ST^^SPRINGFIELD^IL^62701\r\
PV1|1|I|ICU^101^A||||1234^SMITH^JOHN|||MED||||||||V1234\r\
ORC|RE|ORD1|FIL1\r\
OBR|1|ORD1|FIL1|24323-8^Comprehensive metabolic panel^LN|||20240101110000\r\
OBX|1|NM|2345-7^Glucose^LN||95|mg/dL|70-99|N|||F\r\
OBX|2|NM|2160-0^Creatinine^LN||1.1|mg/dL|0.6-1.3|N|||F\r\
OBX|3|NM|17861-6^Calcium^LN||9.4|mg/dL|8.5-10.5|N|||F\r\
OBX|4|NM|2951-2^Sodium^LN||140|mmol/L|135-145|N|||F\r\
OBX|5|NM|2823-3^Potassium^LN||4.2|mmol/L|3.5-5.1|N|||F\r\
NTE|1||Specimen received in good condition\r";

const TRANSFORMER: &str = r#"
    const family = msg.get("PID-5.1");
    msg.set("PID-5.1", family.toUpperCase());
    if (msg.get("MSH-3") === "LAB") msg.set("MSH-5", "CHART");
    let abnormal = 0;
    for (let i = 1; i <= msg.count("OBX"); i++) {
        if (msg.get("OBX[" + i + "]-8") !== "N") abnormal++;
    }
    msg.set("ZLB-1", String(abnormal));
"#;

fn script_run(c: &mut Criterion) {
    let message = OwnedMessage::parse(ORU).unwrap();
    let script = Script::new(TRANSFORMER, Limits::default()).unwrap();
    let mut group = c.benchmark_group("script");
    group.bench_function("typical transformer", |b| {
        b.iter(|| {
            let mut m = message.clone();
            script.run(&mut m).unwrap();
            m
        })
    });
    let empty = Script::new("", Limits::default()).unwrap();
    group.bench_function("empty script", |b| {
        b.iter(|| {
            let mut m = message.clone();
            empty.run(&mut m).unwrap();
            m
        })
    });
    group.finish();
}

criterion_group!(benches, script_run);
criterion_main!(benches);
