//! Scopes: which operations a credential allows on which stream names. Pure parsing and
//! matching over the decoded, validated stream name (the one the engine stores), so that no
//! spelling of a path can reach a name its scope does not cover. Knows nothing of HTTP.

use std::fmt;

/// One operation class of the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// GET (catch-up, long-poll, SSE) and HEAD.
    Read,
    /// POST (appends, close).
    Append,
    /// PUT (creates, forks).
    Create,
    /// DELETE.
    Delete,
    /// Subscriptions, export and import, token management, protected metrics.
    Admin,
}

impl Op {
    const ALL: [(Op, &'static str); 5] = [
        (Op::Read, "read"),
        (Op::Append, "append"),
        (Op::Create, "create"),
        (Op::Delete, "delete"),
        (Op::Admin, "admin"),
    ];

    fn bit(self) -> u8 {
        1 << (self as u8)
    }

    pub fn name(self) -> &'static str {
        Op::ALL[self as usize].1
    }

    /// Every operation, in order.
    pub fn all() -> impl Iterator<Item = Op> {
        Op::ALL.into_iter().map(|(op, _)| op)
    }
}

/// A scope parse error, shown to whoever wrote the scope.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScopeError {
    #[error("scope '{0}' needs the form PREFIX:OPERATIONS, e.g. 'chat/:read,append' or '*:read'")]
    Form(String),
    #[error("unknown operation '{0}' (use read, append, create, delete, admin or all)")]
    UnknownOp(String),
    #[error("scope '{0}' lists no operation")]
    NoOps(String),
    #[error("scope prefix '{0}' names no stream: use '*' for every name, or a name prefix such as 'chat/' ('*' only alone or as the last character)")]
    Prefix(String),
}

/// Names a scope covers: every name (`*`), or a path prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Names {
    All,
    /// Ends with `/`: the names under it. Otherwise: that name and the names under it (so
    /// `chat` covers `chat` and `chat/x`, never `chatroom`).
    Prefix(String),
}

/// A prefix and the operations allowed on the names under it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    names: Names,
    ops: u8,
}

impl Scope {
    /// Parses `PREFIX:OPS` (`OPS` comma-separated; `all` = every operation); `*` or an empty
    /// prefix covers every name. A trailing `*` on a prefix is the same as none (`chat/*`).
    pub fn parse(text: &str) -> Result<Scope, ScopeError> {
        let (prefix, ops) = text.rsplit_once(':').ok_or_else(|| ScopeError::Form(text.to_string()))?;
        let mut bits = 0u8;
        for op in ops.split(',').map(str::trim).filter(|o| !o.is_empty()) {
            if op == "all" {
                bits = 0x1f;
                continue;
            }
            let found = Op::ALL
                .iter()
                .find(|(_, n)| *n == op)
                .ok_or_else(|| ScopeError::UnknownOp(op.to_string()))?;
            bits |= found.0.bit();
        }
        if bits == 0 {
            return Err(ScopeError::NoOps(text.to_string()));
        }
        let raw = prefix.trim();
        // Normalised completely, so that writing a scope out and reading it back gives the
        // same names (a token issued from a scope is never broader than the scope).
        let names = if raw.is_empty() || raw == "*" {
            Names::All
        } else {
            let p = raw.trim_start_matches('/');
            let p = p.strip_suffix('*').unwrap_or(p);
            if p.is_empty() || p.contains('*') {
                return Err(ScopeError::Prefix(raw.to_string()));
            }
            Names::Prefix(p.to_string())
        };
        Ok(Scope { names, ops: bits })
    }

    /// Whether `name` (decoded, validated) lies under this scope's prefix.
    pub fn covers_name(&self, name: &str) -> bool {
        match &self.names {
            Names::All => true,
            Names::Prefix(p) if p.ends_with('/') => name.starts_with(p.as_str()),
            Names::Prefix(p) => name
                .strip_prefix(p.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/')),
        }
    }

    /// Whether this scope allows `op` on `name`.
    pub fn allows(&self, op: Op, name: &str) -> bool {
        self.allows_op(op) && self.covers_name(name)
    }

    /// Whether every name and operation `other` allows, this one allows too.
    pub fn contains(&self, other: &Scope) -> bool {
        other.ops & !self.ops == 0 && self.names_contain(other)
    }

    /// Whether every name `other` covers, this one covers too (whatever the operations).
    pub fn names_contain(&self, other: &Scope) -> bool {
        match (&self.names, &other.names) {
            (Names::All, _) => true,
            (Names::Prefix(_), Names::All) => false,
            (Names::Prefix(mine), Names::Prefix(theirs)) => {
                // Every name under `theirs` must be under `mine`.
                let mine_dir = if mine.ends_with('/') { mine.clone() } else { format!("{mine}/") };
                theirs == mine || theirs.starts_with(&mine_dir)
            }
        }
    }

    /// Whether this scope allows `op` on every name under `dir` (ending in `/`; empty: every
    /// name at all).
    pub fn allows_all_under(&self, op: Op, dir: &str) -> bool {
        self.allows_op(op) && (self.names == Names::All || (!dir.is_empty() && self.covers_name(dir)))
    }

    /// Whether this scope allows `op` on any name at all.
    pub fn allows_op(&self, op: Op) -> bool {
        self.ops & op.bit() != 0
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = match &self.names {
            Names::All => "*",
            Names::Prefix(p) => p,
        };
        let ops: Vec<&str> = Op::ALL.iter().filter(|(o, _)| self.ops & o.bit() != 0).map(|(_, n)| *n).collect();
        write!(f, "{prefix}:{}", ops.join(","))
    }
}

/// A run of stream names in name order: every name starting with a string, or one name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NameRange {
    Under(String),
    Exactly(String),
}

/// The names starting with `prefix` that `scopes` allow `op` on, as disjoint ranges that
/// cover exactly those names (so a listing never looks at a name it may not show).
pub fn ranges_under(scopes: &[Scope], op: Op, prefix: &str) -> Vec<NameRange> {
    let (mut unders, mut exact) = (Vec::new(), Vec::new());
    for s in scopes.iter().filter(|s| s.allows_op(op)) {
        let dir = match &s.names {
            Names::All => prefix.to_string(),
            Names::Prefix(p) if p.ends_with('/') => p.clone(),
            Names::Prefix(p) => {
                exact.push(p.clone());
                format!("{p}/")
            }
        };
        // The names under both `dir` and `prefix`: under the longer one, if either holds the other.
        if dir.starts_with(prefix) {
            unders.push(dir);
        } else if prefix.starts_with(&dir) {
            unders.push(prefix.to_string());
        }
    }
    // Sorted, a range's string prefix comes before it: keep only the outermost ones.
    unders.sort();
    let mut kept: Vec<String> = Vec::new();
    for u in unders {
        if !kept.iter().any(|k| u.starts_with(k.as_str())) {
            kept.push(u);
        }
    }
    exact.retain(|n| n.starts_with(prefix) && !kept.iter().any(|k| n.starts_with(k.as_str())));
    exact.sort();
    exact.dedup();
    kept.into_iter()
        .map(NameRange::Under)
        .chain(exact.into_iter().map(NameRange::Exactly))
        .collect()
}

/// Whether any of `scopes` allows `op` on `name`.
pub fn any_allows(scopes: &[Scope], op: Op, name: &str) -> bool {
    scopes.iter().any(|s| s.allows(op, name))
}

/// Whether `scopes` allow `op` on every name the subscription glob `pattern` can match (`*` one
/// segment or part of one, `**` any number of segments, none included).
pub fn allow_pattern(scopes: &[Scope], op: Op, pattern: &str) -> bool {
    let segments: Vec<&str> = pattern.split('/').collect();
    let Some(first_wild) = segments.iter().position(|s| s.contains('*')) else {
        return any_allows(scopes, op, pattern);
    };
    let literal = segments[..first_wild].join("/");
    let dir = if literal.is_empty() { String::new() } else { format!("{literal}/") };
    let under = scopes.iter().any(|s| s.allows_all_under(op, &dir));
    // `a/**` also matches `a` itself.
    let bare = segments[first_wild..].iter().all(|s| *s == "**") && !literal.is_empty();
    under && (!bare || any_allows(scopes, op, &literal))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_ranges_cover_exactly_the_allowed_names() {
        use NameRange::{Exactly, Under};
        let scopes = |list: &[&str]| list.iter().map(|t| Scope::parse(t).unwrap()).collect::<Vec<_>>();
        let under = |s: &str| Under(s.to_string());
        let exactly = |s: &str| Exactly(s.to_string());
        assert_eq!(ranges_under(&scopes(&["*:read"]), Op::Read, "a/"), [under("a/")]);
        assert_eq!(ranges_under(&scopes(&["*:append"]), Op::Read, ""), []);
        assert_eq!(ranges_under(&scopes(&["chat/:read"]), Op::Read, ""), [under("chat/")]);
        assert_eq!(ranges_under(&scopes(&["chat/:read"]), Op::Read, "ch"), [under("chat/")]);
        assert_eq!(ranges_under(&scopes(&["chat/:read"]), Op::Read, "chat/x"), [under("chat/x")]);
        assert_eq!(ranges_under(&scopes(&["chat/:read"]), Op::Read, "chatroom"), []);
        // `chat` is the name itself and the names under `chat/`, never `chatroom`.
        assert_eq!(
            ranges_under(&scopes(&["chat:read"]), Op::Read, ""),
            [under("chat/"), exactly("chat")]
        );
        assert_eq!(ranges_under(&scopes(&["chat:read"]), Op::Read, "chat/"), [under("chat/")]);
        // Nested and repeated scopes give disjoint ranges.
        assert_eq!(
            ranges_under(&scopes(&["chat/x/:read", "chat:read", "a/b:read", "a/:read,admin"]), Op::Read, ""),
            [under("a/"), under("chat/"), exactly("chat")]
        );
        assert_eq!(ranges_under(&scopes(&["chat/:read", "*:read"]), Op::Read, ""), [under("")]);
    }

    #[test]
    fn a_scope_written_out_reads_back_the_same() {
        for text in [
            "*:read",
            ":all",
            "chat:read",
            "chat/:append",
            "/chat/:delete",
            "chat/*:read",
            "a/b/c:admin,read",
        ] {
            let s = Scope::parse(text).unwrap();
            let again = Scope::parse(&s.to_string()).unwrap();
            assert_eq!(s, again, "{text} -> {s}");
        }
        for bad in ["/:all", "//:read", "chat**:read", "*/x:read", "/*:read", "c*t:read"] {
            assert!(matches!(Scope::parse(bad), Err(ScopeError::Prefix(_))), "{bad}");
        }
    }

    #[test]
    fn patterns_inside_a_scope() {
        let chat = [Scope::parse("chat:admin").unwrap()];
        let under = [Scope::parse("chat/:admin").unwrap()];
        let all = [Scope::parse("*:admin").unwrap()];
        assert!(allow_pattern(&chat, Op::Admin, "chat/*"));
        assert!(allow_pattern(&chat, Op::Admin, "chat/**"));
        assert!(allow_pattern(&chat, Op::Admin, "chat/a/*/b"));
        assert!(allow_pattern(&chat, Op::Admin, "chat"));
        assert!(!allow_pattern(&chat, Op::Read, "chat/*"), "another operation");
        assert!(!allow_pattern(&chat, Op::Admin, "chat*"), "matches chatroom");
        assert!(!allow_pattern(&chat, Op::Admin, "*/x"));
        assert!(!allow_pattern(&chat, Op::Admin, "**"));
        assert!(!allow_pattern(&chat, Op::Admin, "chatroom/*"));
        assert!(allow_pattern(&under, Op::Admin, "chat/*"));
        assert!(!allow_pattern(&under, Op::Admin, "chat/**"), "matches chat itself, outside chat/");
        assert!(allow_pattern(&all, Op::Admin, "**"));
        assert!(allow_pattern(&all, Op::Admin, "*"));
    }

    fn s(t: &str) -> Scope {
        Scope::parse(t).unwrap()
    }

    #[test]
    fn path_prefixes_not_string_prefixes() {
        let chat = s("chat:read");
        assert!(chat.allows(Op::Read, "chat"));
        assert!(chat.allows(Op::Read, "chat/room-1"));
        assert!(!chat.allows(Op::Read, "chatroom"));
        assert!(!chat.allows(Op::Append, "chat/room-1"));
        let dir = s("chat/:read,append");
        assert!(dir.allows(Op::Append, "chat/a/b"));
        assert!(!dir.allows(Op::Read, "chat"));
        assert!(!dir.allows(Op::Read, "chatroom/x"));
        assert_eq!(s("chat/*:read"), s("chat/:read"));
        assert!(s("*:all").allows(Op::Admin, "anything"));
        assert!(s(":read").allows(Op::Read, "x"));
        // README's example: a trailing `/` leaves the name itself out.
        assert!(!s("chat/room-1/:read").allows(Op::Read, "chat/room-1"));
        assert!(s("chat/room-1/:read").allows(Op::Read, "chat/room-1/typing"));
        assert!(s("chat/room-1:read").allows(Op::Read, "chat/room-1"));
        assert!(s("chat/room-1:read").allows(Op::Read, "chat/room-1/typing"));
    }

    #[test]
    fn parse_errors_and_display() {
        assert_eq!(Scope::parse("chat"), Err(ScopeError::Form("chat".into())));
        assert_eq!(Scope::parse("chat:write"), Err(ScopeError::UnknownOp("write".into())));
        assert_eq!(Scope::parse("chat:"), Err(ScopeError::NoOps("chat:".into())));
        assert_eq!(s("chat/:append,read").to_string(), "chat/:read,append");
        assert_eq!(s("*:all").to_string(), "*:read,append,create,delete,admin");
    }

    #[test]
    fn containment() {
        assert!(s("*:all").contains(&s("chat/:read")));
        assert!(s("chat:read,append").contains(&s("chat/x/:read")));
        assert!(s("chat:read").contains(&s("chat:read")));
        assert!(s("chat:read").contains(&s("chat/:read")));
        assert!(!s("chat/:read").contains(&s("chat:read")));
        assert!(!s("chat:read").contains(&s("chatroom:read")));
        assert!(!s("chat:read").contains(&s("chat/x:append")));
        assert!(!s("chat:read").contains(&s("*:read")));
    }
}
