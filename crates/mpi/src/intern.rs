//! A string interner: every distinct value is stored once in one arena and named by a
//! 4-byte [`Sym`], so a million records cost a few bytes per field, not a `String` each.

use hashbrown::DefaultHashBuilder;
use hashbrown::HashTable;
use std::hash::BuildHasher;

/// An interned string. `Sym::NONE` stands for an absent value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Sym(u32);

impl Sym {
    pub const NONE: Sym = Sym(0);

    pub fn is_none(self) -> bool {
        self.0 == 0
    }

    pub fn is_some(self) -> bool {
        self.0 != 0
    }

    pub fn index(self) -> usize {
        self.0 as usize
    }
}

#[derive(Default)]
pub struct Interner {
    arena: String,
    /// Byte range of each symbol in the arena; slot 0 is the empty/absent value.
    spans: Vec<(u32, u32)>,
    table: HashTable<u32>,
    hasher: DefaultHashBuilder,
}

impl Interner {
    pub fn new() -> Self {
        Interner {
            arena: String::new(),
            spans: vec![(0, 0)],
            table: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
        }
    }

    /// The symbol for `s`, adding it when new. The empty string is `Sym::NONE`.
    pub fn intern(&mut self, s: &str) -> Sym {
        if s.is_empty() {
            return Sym::NONE;
        }
        let hash = self.hasher.hash_one(s);
        let arena = &self.arena;
        let spans = &self.spans;
        let eq = |&id: &u32| {
            let (start, end) = spans[id as usize];
            &arena[start as usize..end as usize] == s
        };
        if let Some(&id) = self.table.find(hash, eq) {
            return Sym(id);
        }
        let start = self.arena.len() as u32;
        self.arena.push_str(s);
        let end = self.arena.len() as u32;
        let id = self.spans.len() as u32;
        self.spans.push((start, end));
        let (arena, spans, hasher) = (&self.arena, &self.spans, &self.hasher);
        self.table.insert_unique(hash, id, |&other| {
            let (start, end) = spans[other as usize];
            hasher.hash_one(&arena[start as usize..end as usize])
        });
        Sym(id)
    }

    /// The symbol for `s` if it was ever interned.
    pub fn get(&self, s: &str) -> Option<Sym> {
        if s.is_empty() {
            return Some(Sym::NONE);
        }
        let hash = self.hasher.hash_one(s);
        self.table
            .find(hash, |&id| self.resolve(Sym(id)) == s)
            .map(|&id| Sym(id))
    }

    pub fn resolve(&self, sym: Sym) -> &str {
        let (start, end) = self.spans[sym.index()];
        &self.arena[start as usize..end as usize]
    }

    /// `None` for `Sym::NONE`, the text otherwise.
    pub fn resolve_opt(&self, sym: Sym) -> Option<&str> {
        sym.is_some().then(|| self.resolve(sym))
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Heap bytes held (arena, spans and table), for memory reports.
    pub fn heap_bytes(&self) -> usize {
        self.arena.capacity() + self.spans.capacity() * 8 + self.table.capacity() * 5
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_twice_returns_the_same_symbol() {
        let mut i = Interner::new();
        let a = i.intern("smith");
        let b = i.intern("jones");
        assert_ne!(a, b);
        assert_eq!(i.intern("smith"), a);
        assert_eq!(i.resolve(b), "jones");
        assert_eq!(i.intern(""), Sym::NONE);
        assert_eq!(i.get("jones"), Some(b));
        assert_eq!(i.get("brown"), None);
        for n in 0..10_000 {
            i.intern(&format!("name{n}"));
        }
        assert_eq!(i.resolve(a), "smith");
        assert_eq!(i.get("name9999").map(|s| i.resolve(s)), Some("name9999"));
    }
}
