//! Allergy and medication: an order or dispense for a drug the patient has
//! an active allergy to, by code, by ingredient, or by class.

use crate::alert::{Alert, AlertKind, Evidence, Severity};
use crate::checks::{Rule, RuleInput};
use crate::config::{AllergyMedicationConfig, ConfigError, DrugClass, ShippedTables, merged};
use crate::facts::{Allergy, AllergyStatus, Code, MedicationOrder, PatientId, RXNORM};
use crate::time::Timestamp;

#[derive(Clone, Debug)]
pub struct AllergyMedication {
    classes: Vec<DrugClass>,
}

/// What a drug or an allergen resolves to through the class table.
#[derive(Default)]
struct Resolved {
    /// Member ingredients, by name (lower case).
    ingredients: Vec<String>,
    /// Classes it belongs to.
    classes: Vec<usize>,
    /// Classes it names as a whole (`penicillin`), for allergens.
    named_classes: Vec<usize>,
}

/// The match an alert reports.
enum Match {
    Code(Code),
    Ingredient(String),
    WholeClass(usize),
    SameClass(usize),
}

impl AllergyMedication {
    pub fn shipped() -> Result<AllergyMedication, ConfigError> {
        AllergyMedication::from_config(&AllergyMedicationConfig::default())
    }

    pub fn from_config(config: &AllergyMedicationConfig) -> Result<AllergyMedication, ConfigError> {
        let shipped = ShippedTables::get()?;
        Ok(AllergyMedication {
            classes: merged(
                &shipped.classes,
                config.shipped_classes,
                &config.classes,
                |c| c.id.as_str(),
            ),
        })
    }

    fn run(&self, input: &RuleInput<'_>) -> Vec<Alert> {
        let RuleInput {
            patient,
            facts,
            history,
            now,
        } = *input;
        let medications: Vec<&MedicationOrder> = facts
            .medication_orders
            .iter()
            .filter(|m| m.gives_medication())
            .collect();
        if medications.is_empty() {
            return Vec::new();
        }
        // The record's allergies, updated by this message's own.
        let mut allergies: Vec<Allergy> = history
            .active_allergies(patient)
            .into_iter()
            .filter(|h| !facts.allergies.iter().any(|a| same_allergen(a, h)))
            .collect();
        allergies.extend(
            facts
                .allergies
                .iter()
                .filter(|a| a.status == AllergyStatus::Active)
                .cloned(),
        );
        let mut alerts = Vec::new();
        for medication in medications {
            let drug = self.resolve_drug(medication);
            for allergy in &allergies {
                let Some(found) = self.compare(allergy, medication, &drug) else {
                    continue;
                };
                alerts.push(self.alert(patient, allergy, medication, found, now));
            }
        }
        alerts
    }

    fn compare(
        &self,
        allergy: &Allergy,
        medication: &MedicationOrder,
        drug: &Resolved,
    ) -> Option<Match> {
        let drug_codes = std::iter::once(&medication.code).chain(&medication.ingredients);
        for code in drug_codes {
            if allergy.code.same_concept(code)
                || allergy.group.as_ref().is_some_and(|g| g.same_concept(code))
            {
                return Some(Match::Code(code.clone()));
            }
        }
        let allergen = self.resolve_allergen(allergy);
        if let Some(name) = allergen
            .ingredients
            .iter()
            .find(|i| drug.ingredients.contains(i))
        {
            return Some(Match::Ingredient(name.clone()));
        }
        // An uncoded allergen not in the class table ("ASPIRIN") still
        // matches a drug whose text names it.
        let allergen_words = words(&allergy.code.text);
        if allergy.code.code.is_empty()
            && allergen_words.trim().len() >= 4
            && std::iter::once(&medication.code)
                .chain(&medication.ingredients)
                .any(|c| words(&c.text).contains(&allergen_words))
        {
            return Some(Match::Ingredient(allergen_words.trim().to_owned()));
        }
        if let Some(&class) = allergen
            .named_classes
            .iter()
            .find(|c| drug.classes.contains(c))
        {
            return Some(Match::WholeClass(class));
        }
        if let Some(&class) = allergen.classes.iter().find(|c| drug.classes.contains(c)) {
            return Some(Match::SameClass(class));
        }
        None
    }

    fn resolve_drug(&self, medication: &MedicationOrder) -> Resolved {
        let mut resolved = Resolved::default();
        for code in std::iter::once(&medication.code).chain(&medication.ingredients) {
            self.resolve_code(code, &mut resolved);
        }
        resolved
    }

    fn resolve_allergen(&self, allergy: &Allergy) -> Resolved {
        let mut resolved = Resolved::default();
        for code in std::iter::once(&allergy.code).chain(&allergy.group) {
            self.resolve_code(code, &mut resolved);
            let text = words(&code.text);
            for (i, class) in self.classes.iter().enumerate() {
                if class
                    .allergen_names
                    .iter()
                    .any(|n| text.contains(&words(n)))
                    && !resolved.named_classes.contains(&i)
                {
                    resolved.named_classes.push(i);
                }
            }
        }
        resolved
    }

    /// Adds the ingredients and classes `code` names, by RxNorm code or by
    /// an ingredient's name among the words of its text.
    fn resolve_code(&self, code: &Code, into: &mut Resolved) {
        let text = words(&code.text);
        for (i, class) in self.classes.iter().enumerate() {
            for member in &class.members {
                let by_code = code.system == RXNORM && code.code == member.rxnorm;
                let by_name = !text.trim().is_empty() && text.contains(&words(&member.name));
                if by_code || by_name {
                    let name = member.name.to_lowercase();
                    if !into.ingredients.contains(&name) {
                        into.ingredients.push(name);
                    }
                    if !into.classes.contains(&i) {
                        into.classes.push(i);
                    }
                }
            }
        }
    }

    fn alert(
        &self,
        patient: &PatientId,
        allergy: &Allergy,
        medication: &MedicationOrder,
        found: Match,
        at: Timestamp,
    ) -> Alert {
        let drug = describe(&medication.code);
        let allergen = describe(&allergy.code);
        let (severity, key, why) = match found {
            Match::Code(code) => (
                Severity::Critical,
                format!("code:{}|{}", code.system, code.code),
                "same code".to_owned(),
            ),
            Match::Ingredient(name) => (
                Severity::Critical,
                format!("ingredient:{name}"),
                format!("same ingredient, {name}"),
            ),
            Match::WholeClass(i) => (
                Severity::Critical,
                format!("class:{}", self.classes[i].id),
                format!("allergy recorded to the class, {}", self.classes[i].name),
            ),
            Match::SameClass(i) => (
                Severity::Warning,
                format!("class:{}", self.classes[i].id),
                format!("same class, {}", self.classes[i].name),
            ),
        };
        Alert::new(
            AlertKind::AllergyMedication,
            severity,
            patient,
            key,
            format!("Order for {drug} against recorded allergy to {allergen} ({why})"),
            vec![
                Evidence::Allergy(allergy.clone()),
                Evidence::Medication(medication.clone()),
            ],
            medication.time.unwrap_or(at),
        )
    }
}

fn describe(code: &Code) -> String {
    match (code.text.is_empty(), code.code.is_empty()) {
        (false, _) => code.text.clone(),
        (true, false) => format!("{} {}", code.system, code.code),
        (true, true) => "an uncoded item".to_owned(),
    }
}

fn same_allergen(a: &Allergy, b: &Allergy) -> bool {
    a.code.same_concept(&b.code)
        || (a.code.code.is_empty()
            && b.code.code.is_empty()
            && a.code.text.eq_ignore_ascii_case(&b.code.text))
}

/// Lower-case words separated and surrounded by single spaces, so a name
/// matches only whole words of a text (`" penicillin g "`).
fn words(text: &str) -> String {
    let mut out = String::from(" ");
    for word in text
        .split(|c: char| !c.is_alphanumeric() && c != '-')
        .filter(|w| !w.is_empty())
    {
        out.push_str(&word.to_lowercase());
        out.push(' ');
    }
    out
}

impl Rule for AllergyMedication {
    fn kind(&self) -> AlertKind {
        AlertKind::AllergyMedication
    }

    fn check(&self, input: &RuleInput<'_>) -> Vec<Alert> {
        self.run(input)
    }
}
