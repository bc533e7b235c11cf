//! A message structure compiled for fast matching, and the matcher itself.

use super::text::{push_index, push_num};
use super::{ErrorCode, Finding, FindingKind, SegmentSequence, Severity, StructureOptions};
use crate::model::{GroupKind, MessageStructure, StructureNode};

/// The standard's wildcard segment (some query responses carry any segment).
const ANY_SEGMENT: &str = "ANYHL7SEGMENT";
/// Local id of every segment name the structure does not mention.
const OTHER: u8 = 255;
const NONE: u32 = u32::MAX;

/// A set of local segment ids (0..=255).
#[derive(Clone, Copy, Default, Debug)]
struct Bits([u64; 4]);

impl Bits {
    fn all() -> Bits {
        Bits([u64::MAX; 4])
    }

    fn insert(&mut self, id: u8) {
        self.0[(id >> 6) as usize] |= 1 << (id & 63);
    }

    fn has(&self, id: u8) -> bool {
        self.0[(id >> 6) as usize] & (1 << (id & 63)) != 0
    }

    fn union(&mut self, other: &Bits) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a |= b;
        }
    }
}

#[derive(Debug)]
struct Node {
    name: &'static str,
    group: bool,
    choice: bool,
    min: u32,
    /// `u32::MAX` when unbounded.
    max: u32,
    /// For a segment node: its local id (`OTHER` for the wildcard).
    segment: u8,
    wildcard: bool,
    /// Absent without a finding: optional, or a group whose content may all be absent.
    skippable: bool,
    /// `children[first_child .. first_child + child_count]` in `StructureMatcher::children`.
    first_child: u32,
    child_count: u32,
    /// Segments that can begin this node without skipping a required element.
    first: Bits,
    /// Segments that appear anywhere inside this node.
    contains: Bits,
    /// Like `contains`, without what only a wildcard would take.
    named: Bits,
}

/// A message structure compiled for matching: a flat tree whose nodes know
/// which segments can start them and which they contain, as bitsets over the
/// structure's own segment ids. Build once per structure (see
/// [`crate::VersionSpec::matcher`]), use from any number of threads.
#[derive(Debug)]
pub struct StructureMatcher {
    id: &'static str,
    /// Distinct segment ids, packed into a `u32` each; the position is the local id.
    names: Vec<u32>,
    /// Node 0 is the structure itself (a required, non-repeating sequence).
    nodes: Vec<Node>,
    children: Vec<u32>,
}

fn pack(name: &str) -> u32 {
    let b = name.as_bytes();
    if b.is_empty() || b.len() > 4 {
        return u32::MAX;
    }
    b.iter().fold(0u32, |acc, &x| (acc << 8) | x as u32) | ((b.len() as u32) << 28)
}

impl StructureMatcher {
    /// Compiles a message structure.
    pub fn new(structure: &MessageStructure) -> StructureMatcher {
        let mut m = StructureMatcher {
            id: structure.id,
            names: Vec::new(),
            nodes: Vec::new(),
            children: Vec::new(),
        };
        m.nodes.push(Node {
            name: structure.id,
            group: true,
            choice: false,
            min: 1,
            max: 1,
            segment: OTHER,
            wildcard: false,
            skippable: false,
            first_child: 0,
            child_count: 0,
            first: Bits::default(),
            contains: Bits::default(),
            named: Bits::default(),
        });
        m.add_children(0, &structure.children);
        m
    }

    /// The structure id, e.g. `ORU_R01`.
    pub fn id(&self) -> &'static str {
        self.id
    }

    fn local_id(&self, name: &str) -> u8 {
        let key = pack(name);
        match self.names.iter().position(|n| *n == key) {
            Some(i) => i as u8,
            None => OTHER,
        }
    }

    fn intern(&mut self, name: &str) -> u8 {
        let id = self.local_id(name);
        if id != OTHER || self.names.len() >= OTHER as usize {
            return id;
        }
        self.names.push(pack(name));
        (self.names.len() - 1) as u8
    }

    /// Adds `kids` as the children of `parent`, computing the bitsets bottom-up.
    fn add_children(&mut self, parent: usize, kids: &[StructureNode]) {
        let mut ids = Vec::with_capacity(kids.len());
        for kid in kids {
            let card = kid.cardinality();
            let index = self.nodes.len();
            let mut node = Node {
                name: kid.name(),
                group: false,
                choice: false,
                min: card.min,
                max: card.max.unwrap_or(u32::MAX),
                segment: OTHER,
                wildcard: false,
                skippable: card.min == 0,
                first_child: 0,
                child_count: 0,
                first: Bits::default(),
                contains: Bits::default(),
                named: Bits::default(),
            };
            match kid {
                StructureNode::Segment(seg) if seg.id == ANY_SEGMENT => {
                    node.wildcard = true;
                    node.first = Bits::all();
                    node.contains = Bits::all();
                    self.nodes.push(node);
                }
                StructureNode::Segment(seg) => {
                    node.segment = self.intern(seg.id);
                    node.first.insert(node.segment);
                    node.contains.insert(node.segment);
                    node.named.insert(node.segment);
                    self.nodes.push(node);
                }
                StructureNode::Group(group) => {
                    node.group = true;
                    node.choice = group.kind == GroupKind::Choice;
                    self.nodes.push(node);
                    self.add_children(index, &group.children);
                }
            }
            ids.push(index as u32);
        }
        let first_child = self.children.len() as u32;
        self.children.extend_from_slice(&ids);
        let (mut first, mut contains, mut named) =
            (Bits::default(), Bits::default(), Bits::default());
        let choice = self.nodes[parent].choice;
        for &id in &ids {
            let kid = &self.nodes[id as usize];
            contains.union(&kid.contains);
            named.union(&kid.named);
            let first_open = choice || !first_closed(&self.nodes, &ids, id);
            if first_open {
                first.union(&kid.first);
            }
        }
        let content_skippable = if choice {
            ids.iter().any(|&i| self.nodes[i as usize].skippable)
        } else {
            ids.iter().all(|&i| self.nodes[i as usize].skippable)
        };
        let p = &mut self.nodes[parent];
        p.skippable |= content_skippable;
        p.first_child = first_child;
        p.child_count = ids.len() as u32;
        p.first = first;
        p.contains = contains;
        p.named = named;
    }

    fn child(&self, group: u32, k: u32) -> u32 {
        self.children[(self.nodes[group as usize].first_child + k) as usize]
    }

    /// Checks the order of `segments` against the structure.
    pub fn validate<M: SegmentSequence + ?Sized>(
        &self,
        segments: &M,
        options: StructureOptions,
    ) -> Vec<Finding> {
        self.validate_with_paths(segments, options, &[]).0
    }

    /// Like [`StructureMatcher::validate`], and also renders the group path
    /// of the segments at the (ascending) indices `wanted`, e.g.
    /// `ORU_R01.PATIENT_RESULT.ORDER_OBSERVATION[2].OBSERVATION[3].OBX`.
    /// A segment that fits nowhere gets the path where it was met.
    pub fn validate_with_paths<M: SegmentSequence + ?Sized>(
        &self,
        segments: &M,
        options: StructureOptions,
        wanted: &[usize],
    ) -> (Vec<Finding>, Vec<String>) {
        // Each segment's local id, looked up once (the lookahead reads ids
        // ahead of the current segment, maybe several times).
        let local: Vec<u8> = (0..segments.segment_count())
            .map(|i| self.local_id(segments.segment_id(i)))
            .collect();
        let mut run = Run {
            m: self,
            stack: Vec::with_capacity(8),
            findings: Vec::new(),
            message: segments,
            local: &local,
        };
        let mut paths = Vec::with_capacity(wanted.len());
        let mut next_wanted = wanted.iter().peekable();
        run.stack.push(Frame {
            node: 0,
            rep: 1,
            pos: NONE,
            count: 0,
        });
        for (index, &id) in local.iter().enumerate() {
            let name = segments.segment_id(index);
            let skip = id == OTHER
                && options.allow_z_segments
                && name.starts_with('Z')
                && !self.has_wildcard();
            let placed = !skip && run.place(index, name, id);
            while next_wanted.next_if(|&&w| w < index).is_some() {
                paths.push(String::new());
            }
            if next_wanted.next_if(|&&w| w == index).is_some() {
                paths.push(run.segment_path(name, placed));
            }
        }
        paths.resize(wanted.len(), String::new());
        while !run.stack.is_empty() {
            run.pop_frame(None);
        }
        (run.findings, paths)
    }

    fn has_wildcard(&self) -> bool {
        self.nodes[0].contains.has(OTHER)
    }
}

/// True when a required sibling comes before `id` in a sequence, so `id` cannot begin it.
fn first_closed(nodes: &[Node], ids: &[u32], id: u32) -> bool {
    ids.iter()
        .take_while(|&&i| i != id)
        .any(|&i| !nodes[i as usize].skippable)
}

#[derive(Clone, Copy, Debug)]
struct Frame {
    /// The group node this frame is an instance of.
    node: u32,
    /// Which repetition of the group this is (1-based).
    rep: u32,
    /// Index of the current child among the group's children, `NONE` before the first.
    pos: u32,
    /// Occurrences of the current child so far.
    count: u32,
}

/// Segments examined ahead when several places fit a segment.
const LOOKAHEAD: usize = 4;

/// Up to four placements for one segment, nearest first.
#[derive(Default)]
struct Candidates {
    items: [(usize, Action); 4],
    len: usize,
}

impl Candidates {
    /// Records a placement; true when the search should stop (lenient
    /// searches want only the first, and there is room for four).
    fn push(&mut self, plan: (usize, Action), strict: bool) -> bool {
        if self.len < self.items.len() {
            self.items[self.len] = plan;
            self.len += 1;
        }
        !strict || self.len == self.items.len()
    }

    fn first(&self) -> Option<(usize, Action)> {
        (self.len > 0).then(|| self.items[0])
    }
}

#[derive(Clone, Copy, Debug, Default)]
enum Action {
    #[default]
    Repeat,
    NewRepetition,
    Enter(u32),
}

struct Run<'a, M: SegmentSequence + ?Sized> {
    m: &'a StructureMatcher,
    stack: Vec<Frame>,
    findings: Vec<Finding>,
    message: &'a M,
    /// The local id of every segment of `message`, by index.
    local: &'a [u8],
}

impl<M: SegmentSequence + ?Sized> Run<'_, M> {
    /// Strict placement may use a wildcard; a lenient one (which skips
    /// required elements) only where the structure names the segment, or a
    /// wildcard would swallow every misplaced segment.
    fn bits(&self, node: u32, strict: bool) -> &Bits {
        let n = &self.m.nodes[node as usize];
        if strict { &n.first } else { &n.named }
    }

    fn matches_segment(&self, node: u32, id: u8) -> bool {
        let n = &self.m.nodes[node as usize];
        !n.group && (n.wildcard || n.segment == id)
    }

    /// Where segment `id` can go, nearest first: the level that takes it, and how.
    /// Strict placements skip no required element; lenient ones may (and only
    /// the first is returned).
    fn search(&self, id: u8, strict: bool, out: &mut Candidates) {
        out.len = 0;
        let top = self.stack.len() - 1;
        for level in (0..=top).rev() {
            let f = self.stack[level];
            let group = &self.m.nodes[f.node as usize];
            if f.pos != NONE {
                let c = self.m.child(f.node, f.pos);
                let cn = &self.m.nodes[c as usize];
                if level == top
                    && self.matches_segment(c, id)
                    && f.count < cn.max
                    && out.push((level, Action::Repeat), strict)
                {
                    return;
                }
                // A new repetition of an enclosing group only strictly: one
                // that skips the group's required start would report a
                // cascade of missing segments where one segment is out of
                // place (PD1 after PV1 is not a new patient without a PID).
                if strict
                    && level < top
                    && cn.group
                    && self.bits(c, strict).has(id)
                    && f.count < cn.max
                    && out.push((level, Action::NewRepetition), strict)
                {
                    return;
                }
                if strict && f.count < cn.min {
                    return;
                }
                if group.choice {
                    continue; // one alternative chosen: the choice is complete
                }
            }
            let start = if f.pos == NONE { 0 } else { f.pos + 1 };
            for k in start..group.child_count {
                let c = self.m.child(f.node, k);
                if self.bits(c, strict).has(id) && out.push((level, Action::Enter(k)), strict) {
                    return;
                }
                if strict && !group.choice && !self.m.nodes[c as usize].skippable {
                    return;
                }
            }
            if strict && group.choice && f.pos == NONE {
                return;
            }
        }
    }

    /// Places one segment; false when it fits nowhere (and was reported).
    fn place(&mut self, index: usize, name: &str, id: u8) -> bool {
        let mut found = Candidates::default();
        self.search(id, true, &mut found);
        let (plan, strict) = match found.len {
            0 => {
                self.search(id, false, &mut found);
                match found.first() {
                    Some(plan) => (plan, false),
                    None => {
                        self.misplaced(index, name, id);
                        return false;
                    }
                }
            }
            1 => (found.items[0], true),
            _ => (self.best_by_lookahead(index, &found), true),
        };
        self.apply(index, id, plan, strict);
        true
    }

    /// The path of the segment just handled: its groups, its id, its repetition.
    fn segment_path(&self, name: &str, placed: bool) -> String {
        let mut out = self.path(self.stack.len());
        out.push('.');
        out.push_str(name);
        if placed {
            if let Some(f) = self.stack.last() {
                if f.count > 1 {
                    push_index(&mut out, f.count as usize);
                }
            }
        }
        out
    }

    /// Several strict places fit (an OML_O21 ORC may open a new ORDER or a
    /// PRIOR_RESULT): take the nearest one under which the following segments
    /// also fit, judged over a few segments ahead.
    fn best_by_lookahead(&mut self, index: usize, found: &Candidates) -> (usize, Action) {
        let saved = self.stack.clone();
        let findings_before = self.findings.len();
        let mut best_score = 0;
        let ahead = (index + 1..self.message.segment_count()).take(LOOKAHEAD);
        let wanted = ahead.len();
        // The wildcard (ANYHL7SEGMENT) takes a segment only when nothing named does.
        let mut order: [(usize, Action); 4] = found.items;
        let id = self.current_id(index);
        order[..found.len].sort_by_key(|plan| self.only_wildcard_takes(*plan, id));
        let mut best = order[0];
        for &plan in &order[..found.len] {
            let id = self.current_id(index);
            self.apply(index, id, plan, true);
            let mut score = 0;
            let mut next = Candidates::default();
            for j in index + 1..index + 1 + wanted {
                let id = self.current_id(j);
                if id == OTHER {
                    score += 1; // a Z-segment or unknown one: no bearing on the choice
                    continue;
                }
                self.search(id, true, &mut next);
                match next.first() {
                    Some(p) => self.apply(j, id, p, true),
                    None => break,
                }
                score += 1;
            }
            self.stack.clear();
            self.stack.extend_from_slice(&saved);
            self.findings.truncate(findings_before);
            if score > best_score {
                best = plan;
                best_score = score;
            }
            if score == wanted {
                break;
            }
        }
        best
    }

    /// True when the placement puts segment `id` into a wildcard.
    fn only_wildcard_takes(&self, (level, action): (usize, Action), id: u8) -> bool {
        let f = self.stack[level];
        let node = match action {
            Action::Enter(k) => self.m.child(f.node, k),
            Action::Repeat | Action::NewRepetition => self.m.child(f.node, f.pos),
        };
        !self.m.nodes[node as usize].named.has(id)
    }

    fn current_id(&self, index: usize) -> u8 {
        self.local[index]
    }

    fn apply(&mut self, index: usize, id: u8, plan: (usize, Action), strict: bool) {
        let (level, action) = plan;
        while self.stack.len() > level + 1 {
            self.pop_frame(Some(index));
        }
        match action {
            Action::Repeat => self.stack[level].count += 1,
            Action::NewRepetition => {
                let f = &mut self.stack[level];
                f.count += 1;
                let node = self.m.child(f.node, f.pos);
                let rep = f.count;
                self.stack.push(Frame {
                    node,
                    rep,
                    pos: NONE,
                    count: 0,
                });
                self.descend(index, id, strict);
            }
            Action::Enter(k) => {
                let f = self.stack[level];
                self.report_skipped(level, f.pos.wrapping_add(1), k, Some(index));
                let f = &mut self.stack[level];
                f.pos = k;
                f.count = 1;
                let node = self.m.child(f.node, k);
                if self.m.nodes[node as usize].group {
                    self.stack.push(Frame {
                        node,
                        rep: 1,
                        pos: NONE,
                        count: 0,
                    });
                    self.descend(index, id, strict);
                }
            }
        }
    }

    /// Walks down from a freshly opened group to the segment node for `id`.
    fn descend(&mut self, index: usize, id: u8, strict: bool) {
        loop {
            let top = self.stack.len() - 1;
            let f = self.stack[top];
            let group = &self.m.nodes[f.node as usize];
            let found = (0..group.child_count).find(|&k| {
                let c = self.m.child(f.node, k);
                self.bits(c, strict).has(id)
            });
            let Some(k) = found else { return };
            self.report_skipped(top, 0, k, Some(index));
            let f = &mut self.stack[top];
            f.pos = k;
            f.count = 1;
            let node = self.m.child(f.node, k);
            if !self.m.nodes[node as usize].group {
                return;
            }
            self.stack.push(Frame {
                node,
                rep: 1,
                pos: NONE,
                count: 0,
            });
        }
    }

    /// Reports the required children `from..to` of the frame at `level` as missing.
    fn report_skipped(&mut self, level: usize, from: u32, to: u32, before: Option<usize>) {
        let f = self.stack[level];
        let group = &self.m.nodes[f.node as usize];
        if group.choice {
            return;
        }
        for k in from..to {
            let c = self.m.child(f.node, k);
            if !self.m.nodes[c as usize].skippable {
                self.missing(level, c, before);
            }
        }
    }

    /// Closes the innermost group instance, reporting what it still lacked.
    fn pop_frame(&mut self, before: Option<usize>) {
        let level = self.stack.len() - 1;
        let f = self.stack[level];
        let group = &self.m.nodes[f.node as usize];
        if group.choice {
            if f.pos == NONE {
                self.missing(level, f.node, before);
            }
        } else {
            if f.pos != NONE {
                let c = self.m.child(f.node, f.pos);
                if f.count < self.m.nodes[c as usize].min {
                    self.missing(level, c, before);
                }
            }
            let from = if f.pos == NONE { 0 } else { f.pos + 1 };
            self.report_skipped(level, from, group.child_count, before);
        }
        self.stack.pop();
    }

    fn missing(&mut self, level: usize, node: u32, before: Option<usize>) {
        let n = &self.m.nodes[node as usize];
        let mut path = self.path(level + 1);
        if !(n.group && n.choice) {
            path.push('.');
            path.push_str(n.name);
        }
        let what = if n.group {
            if n.choice {
                "one of the alternatives of required choice"
            } else {
                "required group"
            }
        } else {
            "required segment"
        };

        let mut message = String::with_capacity(80);
        message.push_str(what);
        message.push(' ');
        message.push_str(n.name);
        message.push_str(" is missing ");
        match before {
            Some(i) => {
                message.push_str("before segment ");
                push_num(&mut message, i + 1);
                message.push_str(" (");
                message.push_str(self.message.segment_id(i));
                message.push(')');
            }
            None => message.push_str("before the end of the message"),
        }
        self.findings.push(Finding {
            kind: FindingKind::MissingSegment,
            code: ErrorCode::SegmentSequenceError,
            severity: Severity::Error,
            path,
            segment_index: before,
            segment_id: if n.group {
                self.first_segment_name(node)
            } else {
                n.name.to_string()
            },
            segment_sequence: None,
            field: None,
            message,
        });
    }

    /// The first segment a group would begin with, for naming a missing group.
    fn first_segment_name(&self, node: u32) -> String {
        let n = &self.m.nodes[node as usize];
        if !n.group {
            return n.name.to_string();
        }
        (0..n.child_count)
            .map(|k| self.m.child(node, k))
            .find(|&c| !self.m.nodes[c as usize].skippable)
            .or_else(|| (n.child_count > 0).then(|| self.m.child(node, 0)))
            .map(|c| self.first_segment_name(c))
            .unwrap_or_default()
    }

    /// A segment that fits nowhere ahead: too many, out of order, or unknown.
    fn misplaced(&mut self, index: usize, name: &str, id: u8) {
        let top = self.stack.len() - 1;
        let in_structure = id != OTHER && self.m.nodes[0].contains.has(id);
        // Too many: the current segment, or an enclosing group that could start again.
        let mut too_many = None;
        for level in (0..=top).rev() {
            let f = self.stack[level];
            if f.pos == NONE {
                continue;
            }
            let c = self.m.child(f.node, f.pos);
            let cn = &self.m.nodes[c as usize];
            let fits = if level == top {
                self.matches_segment(c, id)
            } else {
                cn.group && !cn.choice && cn.first.has(id)
            };
            if fits && f.count >= cn.max {
                too_many = Some((level, c, f.count));
                break;
            }
        }
        let (kind, path, message) = match too_many {
            Some((level, node, count)) => {
                let n = &self.m.nodes[node as usize];
                let mut path = self.path(level + 1);
                path.push('.');
                path.push_str(n.name);
                push_index(&mut path, count as usize + 1);
                let noun = if n.group { "group" } else { "segment" };
                let message = format!("{noun} {} may occur at most {} time(s) here", n.name, n.max);
                (FindingKind::TooManyRepetitions, path, message)
            }
            None => {
                let mut path = self.path(self.stack.len());
                path.push('.');
                path.push_str(name);
                if in_structure {
                    let message = format!(
                        "segment {name} is not allowed at this point of {}",
                        self.m.id
                    );
                    (FindingKind::SegmentOutOfOrder, path, message)
                } else {
                    let message = format!("segment {name} is not part of {}", self.m.id);
                    (FindingKind::UnexpectedSegment, path, message)
                }
            }
        };
        self.findings.push(Finding {
            kind,
            code: ErrorCode::SegmentSequenceError,
            severity: Severity::Error,
            path,
            segment_index: Some(index),
            segment_id: name.to_string(),
            segment_sequence: Some(super::occurrence(self.message, index)),
            field: None,
            message,
        });
    }

    /// The group path of the first `depth` frames: `ORU_R01.PATIENT_RESULT.ORDER_OBSERVATION[2]`.
    fn path(&self, depth: usize) -> String {
        let mut out = String::with_capacity(96);
        out.push_str(self.m.id);
        for i in 1..depth.min(self.stack.len()) {
            let f = self.stack[i];
            let n = &self.m.nodes[f.node as usize];
            if n.choice {
                continue;
            }
            out.push('.');
            out.push_str(n.name);
            if f.rep > 1 {
                push_index(&mut out, f.rep as usize);
            }
        }
        out
    }
}
