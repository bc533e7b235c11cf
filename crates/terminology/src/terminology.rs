//! The loaded content as one immutable snapshot, and the handle that swaps
//! a new snapshot in while channels keep using the old one.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, PoisonError, RwLock};

use crate::model::{
    CodeSystem, Coding, Concept, ConceptMap, Equivalence, MapScope, Scope, UnmappedRule,
};
use crate::systems::canonical;

/// One translation of a source code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Match {
    pub equivalence: Equivalence,
    /// The target; `None` for an `unmatched` entry that names none.
    pub concept: Option<Coding>,
    /// The URL of the map that said so.
    pub source: String,
    pub comment: Option<String>,
}

impl Match {
    /// Whether this target may stand for the source (see [`Equivalence::is_match`]).
    pub fn is_match(&self) -> bool {
        self.equivalence.is_match() && self.concept.is_some()
    }
}

/// What [`Terminology::validate_code`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Validity {
    Valid,
    /// The code is in the system but the display differs from its own.
    WrongDisplay {
        expected: String,
    },
    UnknownCode,
    /// No code system of that URL is loaded: nothing can be said.
    UnknownSystem,
}

/// The multiply-rotate hash of rustc's `FxHasher`, eight bytes at a time: a
/// look-up hashes a short system and code in a few instructions where
/// SipHash takes a few hundred. Not keyed: the index's keys are the loaded
/// maps' codes (an administrator's content), never a sender's, so a sender
/// cannot choose colliding keys; it can only look them up.
#[derive(Clone, Copy, Default)]
struct FxHasher {
    hash: u64,
}

const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(FX_SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u8(&mut self, byte: u8) {
        self.add(u64::from(byte));
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

#[derive(Clone, Debug)]
struct Entry {
    map: usize,
    /// The target; `None` for an `unmatched` entry that names none.
    concept: Option<Coding>,
    equivalence: Equivalence,
    comment: Option<String>,
}

/// Loaded code systems and concept maps, indexed for lookups. Immutable:
/// a reload builds a new one (see [`SharedTerminology`]).
#[derive(Debug, Default)]
pub struct Terminology {
    version: u64,
    code_systems: HashMap<String, CodeSystem>,
    maps: Vec<ConceptMap>,
    /// canonical source system -> code -> entries, in load order (two
    /// levels, so a look-up by borrowed `&str`s allocates no key).
    index: FxMap<String, FxMap<String, Vec<Entry>>>,
    /// Whether any group has an `unmapped` rule: without one, a code's
    /// matches are its index entries alone.
    unmapped_rules: bool,
}

impl Terminology {
    /// A snapshot of `code_systems` and `maps`, numbered `version`.
    pub fn new(version: u64, code_systems: Vec<CodeSystem>, maps: Vec<ConceptMap>) -> Terminology {
        let mut index: FxMap<String, FxMap<String, Vec<Entry>>> = FxMap::default();
        for (m, map) in maps.iter().enumerate() {
            for group in &map.groups {
                let codes = index
                    .entry(canonical(&group.source).to_string())
                    .or_default();
                for element in &group.elements {
                    let entries = codes.entry(element.code.clone()).or_default();
                    entries.extend(element.targets.iter().map(|t| {
                        Entry {
                            map: m,
                            concept: t
                                .code
                                .as_deref()
                                .map(|c| Coding::new(&group.target, c, t.display.as_deref())),
                            equivalence: t.equivalence,
                            comment: t.comment.clone(),
                        }
                    }));
                }
            }
        }
        let unmapped_rules = maps
            .iter()
            .any(|m| m.groups.iter().any(|g| g.unmapped.is_some()));
        Terminology {
            version,
            unmapped_rules,
            code_systems: code_systems
                .into_iter()
                .map(|cs| (canonical(&cs.url).to_string(), cs))
                .collect(),
            maps,
            index,
        }
    }

    /// The number of the load that built this snapshot.
    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn concept_maps(&self) -> &[ConceptMap] {
        &self.maps
    }

    /// Every loaded code system, by URL.
    pub fn code_systems(&self) -> Vec<&CodeSystem> {
        let mut all: Vec<&CodeSystem> = self.code_systems.values().collect();
        all.sort_by(|a, b| a.url.cmp(&b.url));
        all
    }

    pub fn code_system(&self, url: &str) -> Option<&CodeSystem> {
        self.code_systems.get(canonical(url))
    }

    /// Translates `code` of `system` seen at `scope` through every map that
    /// covers the scope (`FHIR $translate`): narrower scopes first (a
    /// sender's own map before a general one), then in load order. A group
    /// without the code answers by its `unmapped` rule: `provided` gives the
    /// code back as `equal`, `fixed` its code as `inexact`, `other-map`
    /// what that map says.
    pub fn translate(&self, system: &str, code: &str, scope: &Scope<'_>) -> Vec<Match> {
        self.translate_in(system, code, scope, None)
    }

    /// [`Terminology::translate`] through the maps whose URL is in `only`.
    pub fn translate_in(
        &self,
        system: &str,
        code: &str,
        scope: &Scope<'_>,
        only: Option<&[String]>,
    ) -> Vec<Match> {
        let wanted =
            |m: &ConceptMap| m.scope.covers(scope) && only.is_none_or(|urls| urls.contains(&m.url));
        let system = canonical(system);
        let mut found: Vec<(u8, Match)> = Vec::new();
        if let Some(entries) = self.index.get(system).and_then(|codes| codes.get(code)) {
            for e in entries {
                let map = &self.maps[e.map];
                if !wanted(map) {
                    continue;
                }
                found.push((
                    map.scope.specificity(),
                    Match {
                        equivalence: e.equivalence,
                        concept: e.concept.clone(),
                        source: map.url.clone(),
                        comment: e.comment.clone(),
                    },
                ));
            }
        }
        self.unmapped_rules(system, code, &wanted, &mut found, 0);
        // A stable sort keeps load order within one specificity.
        found.sort_by_key(|(specificity, _)| std::cmp::Reverse(*specificity));
        found.into_iter().map(|(_, m)| m).collect()
    }

    /// The target of the first match [`Terminology::translate_in`] gives
    /// whose equivalence lets it stand for the source, if any.
    pub fn first_match_in(
        &self,
        system: &str,
        code: &str,
        scope: &Scope<'_>,
        only: Option<&[String]>,
    ) -> Option<Cow<'_, Coding>> {
        if self.unmapped_rules {
            return self
                .translate_in(system, code, scope, only)
                .into_iter()
                .find(Match::is_match)
                .and_then(|m| m.concept)
                .map(Cow::Owned);
        }
        // The index entries alone, in load order: the first of the highest
        // specificity is the one the stable sort would put first.
        let entries = self
            .index
            .get(canonical(system))
            .and_then(|codes| codes.get(code))?;
        let mut best: Option<(u8, &Entry)> = None;
        for e in entries {
            let map = &self.maps[e.map];
            let usable = e.equivalence.is_match()
                && e.concept.is_some()
                && map.scope.covers(scope)
                && only.is_none_or(|urls| urls.contains(&map.url));
            if !usable {
                continue;
            }
            let specificity = map.scope.specificity();
            if best.is_none_or(|(b, _)| specificity > b) {
                best = Some((specificity, e));
            }
        }
        let (_, e) = best?;
        e.concept.as_ref().map(Cow::Borrowed)
    }

    /// Answers from the `unmapped` rules of groups for `system` that do not
    /// list `code`.
    fn unmapped_rules(
        &self,
        system: &str,
        code: &str,
        wanted: &dyn Fn(&ConceptMap) -> bool,
        found: &mut Vec<(u8, Match)>,
        depth: usize,
    ) {
        // `other-map` chains are followed a few steps only: a cycle in the
        // input must not loop.
        if depth > 4 {
            return;
        }
        for map in self.maps.iter().filter(|m| wanted(m)) {
            for group in &map.groups {
                let Some(rule) = &group.unmapped else {
                    continue;
                };
                if canonical(&group.source) != system
                    || group.elements.iter().any(|e| e.code == code)
                {
                    continue;
                }
                let (equivalence, concept) = match rule {
                    UnmappedRule::Provided => {
                        (Equivalence::Equal, Coding::new(&group.target, code, None))
                    }
                    UnmappedRule::Fixed { code, display } => (
                        Equivalence::Inexact,
                        Coding::new(&group.target, code, display.as_deref()),
                    ),
                    UnmappedRule::OtherMap(url) => {
                        let other = |m: &ConceptMap| m.url == *url;
                        for m in self.maps.iter().filter(|m| other(m)) {
                            for g in m.groups.iter().filter(|g| canonical(&g.source) == system) {
                                for e in g.elements.iter().filter(|e| e.code == code) {
                                    for t in &e.targets {
                                        found.push((
                                            map.scope.specificity(),
                                            Match {
                                                equivalence: t.equivalence,
                                                concept: t.code.as_deref().map(|c| {
                                                    Coding::new(&g.target, c, t.display.as_deref())
                                                }),
                                                source: m.url.clone(),
                                                comment: t.comment.clone(),
                                            },
                                        ));
                                    }
                                }
                            }
                        }
                        self.unmapped_rules(system, code, &other, found, depth + 1);
                        continue;
                    }
                };
                found.push((
                    map.scope.specificity(),
                    Match {
                        equivalence,
                        concept: Some(concept),
                        source: map.url.clone(),
                        comment: None,
                    },
                ));
            }
        }
    }

    /// The concept `code` of `system`, from the loaded code systems.
    pub fn lookup(&self, system: &str, code: &str) -> Option<&Concept> {
        self.code_system(system)?.concepts.get(code)
    }

    /// Whether `code` is in `system`, and `display` (when given) is its
    /// display (compared ignoring case and surrounding spaces).
    pub fn validate_code(&self, system: &str, code: &str, display: Option<&str>) -> Validity {
        let Some(cs) = self.code_system(system) else {
            return Validity::UnknownSystem;
        };
        let Some(concept) = cs.concepts.get(code) else {
            return Validity::UnknownCode;
        };
        match (display, &concept.display) {
            (Some(given), Some(own)) if !given.trim().eq_ignore_ascii_case(own.trim()) => {
                Validity::WrongDisplay {
                    expected: own.clone(),
                }
            }
            _ => Validity::Valid,
        }
    }

    /// Whether `system` (canonical) is a target system of a map whose URL
    /// is in `only` (any map when `None`): a code there is already mapped.
    pub fn is_target_system(&self, system: &str, only: Option<&[String]>) -> bool {
        self.maps
            .iter()
            .filter(|m| only.is_none_or(|urls| urls.contains(&m.url)))
            .any(|m| m.groups.iter().any(|g| canonical(&g.target) == system))
    }
}

/// Content to load: what [`SharedTerminology::load`] turns into the next
/// snapshot.
#[derive(Clone, Debug, Default)]
pub struct Content {
    pub code_systems: Vec<CodeSystem>,
    pub concept_maps: Vec<ConceptMap>,
}

impl Content {
    pub fn with_scope(mut self, scope: &MapScope) -> Content {
        for m in &mut self.concept_maps {
            m.scope = scope.clone();
        }
        self
    }
}

/// The current [`Terminology`], shared by every channel. A reader takes an
/// `Arc` of the snapshot and keeps it for the whole message, so a load
/// that lands meanwhile is seen from the next message on, never halfway.
#[derive(Debug, Default)]
pub struct SharedTerminology {
    current: RwLock<Arc<Terminology>>,
}

impl SharedTerminology {
    /// Starts at version 0, empty.
    pub fn new() -> SharedTerminology {
        SharedTerminology::default()
    }

    /// The snapshot in force now.
    pub fn current(&self) -> Arc<Terminology> {
        // A poisoned lock still holds a whole snapshot: the swap is one store.
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Builds a snapshot of `content` numbered one past the current one and
    /// puts it in force; returns its version.
    pub fn load(&self, content: Content) -> u64 {
        // Indexing happens before the lock: readers wait only for the swap.
        let mut next = Terminology::new(0, content.code_systems, content.concept_maps);
        let mut slot = self.current.write().unwrap_or_else(PoisonError::into_inner);
        next.version = slot.version + 1;
        let version = next.version;
        *slot = Arc::new(next);
        version
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::csv_map::concept_maps_from_csv;

    const MAP: &str = "\
source_system,source_code,target_system,target_code,target_display,equivalence,sender,field
L,A,http://loinc.org,1-1,General,equivalent,,
L,A,http://loinc.org,2-2,Lab's own,equivalent,LAB,
L,A,http://loinc.org,3-3,Lab at Hosp,equivalent,LAB@HOSP,
L,A,http://loinc.org,4-4,Lab at Hosp OBX-3,disjoint,LAB@HOSP,OBX-3
L,B,http://loinc.org,5-5,First,equivalent,,OBX-3
L,B,http://loinc.org,6-6,Second,wider,,OBX-3
L,C,http://loinc.org,,,unmatched,,
L,D,http://loinc.org,7-7,Disjoint,disjoint,,
";

    /// `first_match_in` answers what the first match of `translate_in` is.
    #[test]
    fn the_first_match_is_translates_first_match() {
        let t = Terminology::new(1, Vec::new(), concept_maps_from_csv("m.csv", MAP).unwrap());
        let scopes = [
            Scope::default(),
            Scope {
                application: Some("LAB"),
                facility: Some("X"),
                field: Some("OBX-3"),
            },
            Scope {
                application: Some("LAB"),
                facility: Some("HOSP"),
                field: Some("OBX-3"),
            },
            Scope {
                application: Some("LAB"),
                facility: Some("HOSP"),
                field: Some("OBX-4"),
            },
        ];
        let only = ["m.csv".to_string()];
        let mut found = 0;
        for scope in &scopes {
            for code in ["A", "B", "C", "D", "E"] {
                for only in [None, Some(&only[..]), Some(&[][..])] {
                    let expected = t
                        .translate_in("L", code, scope, only)
                        .into_iter()
                        .find(Match::is_match)
                        .and_then(|m| m.concept);
                    found += usize::from(expected.is_some());
                    assert_eq!(
                        t.first_match_in("L", code, scope, only)
                            .map(Cow::into_owned),
                        expected
                    );
                }
            }
        }
        assert!(found > 0);
    }
}
