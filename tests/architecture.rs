//! The architecture of `shared/src`, enforced where the next engineer sees
//! it. The layers, lowest first; a module may import its own top-level
//! module and the layers below its own, never a layer above, and never a
//! sibling of its own layer (except in the pure core, whose three parts
//! build on each other). With no upward import, no import cycle can span
//! two layers.
//!
//! Also: only the storage layer builds table keys (string literals like
//! `"CONN#"`): the store's `keys.rs` the logical ones, the DynamoDB adapter
//! the physical partition of the due index (`DUE#{shard}`, its encoding of
//! the `Due` port). Only the store reaches the raw state store (`.store()`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use syn::visit::Visit;

/// Top-level module → its layer. The table IS the rule.
const LAYERS: &[(&str, u8, &str)] = &[
    ("domain", 0, "pure core: model, status machine, policy, input rules, messages"),
    ("catalog", 0, "pure core: the platform catalog as data"),
    ("costs", 0, "pure core: the costs CSV rules"),
    ("ports", 1, "the traits through which the service talks to the world"),
    ("config", 1, "settings"),
    ("adapters", 2, "AWS and embedded implementations of the ports"),
    ("store", 2, "the typed repository; every table key"),
    ("platform", 2, "HTTP to platforms from catalog data; one token client"),
    ("flows", 3, "one journey per file"),
    ("entry", 4, "HTTP routes and handlers, Lambda glue"),
    ("wiring", 5, "environment → adapters → App"),
];

/// The one rank where siblings may import each other.
const SHARED_RANK: u8 = 0;

fn layer(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _, _)| *m == module).map(|(_, rank, _)| *rank)
}

/// The module path of a file under `src/` (`flows/sync.rs` → `[flows, sync]`,
/// `flows/mod.rs` → `[flows]`, `lib.rs` → `[]`).
fn module_path(rel: &str) -> Vec<String> {
    let mut parts: Vec<String> = rel.trim_end_matches(".rs").split('/').map(str::to_owned).collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

/// Collects the top-level module every `crate::`/`super::` path names.
struct Imports {
    /// The module path of the scope being visited (grows in inline modules).
    scope: Vec<String>,
    found: Vec<(String, String)>,
}

impl Imports {
    fn resolve(&mut self, segments: &[String]) {
        let mut path: Vec<String> = match segments.first().map(String::as_str) {
            Some("crate") => vec![],
            Some("super") | Some("self") => self.scope.clone(),
            _ => return,
        };
        let mut rest = segments;
        if rest[0] == "crate" {
            rest = &rest[1..];
        }
        for s in rest {
            match s.as_str() {
                "super" => {
                    path.pop();
                }
                "self" => {}
                other => path.push(other.to_owned()),
            }
        }
        if let Some(top) = path.first() {
            self.found.push((top.clone(), format!("crate::{}", path.join("::"))));
        }
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                prefix.push(n.ident.to_string());
                self.resolve(&prefix.clone());
                prefix.pop();
            }
            syn::UseTree::Rename(r) => {
                prefix.push(r.ident.to_string());
                self.resolve(&prefix.clone());
                prefix.pop();
            }
            syn::UseTree::Glob(_) => self.resolve(&prefix.clone()),
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(prefix, t);
                }
            }
        }
    }
}

impl<'ast> Visit<'ast> for Imports {
    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        self.use_tree(&mut Vec::new(), &u.tree);
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let segments: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
        if segments.len() > 1 {
            self.resolve(&segments);
        }
        syn::visit::visit_path(self, p);
    }

    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        self.scope.push(m.ident.to_string());
        syn::visit::visit_item_mod(self, m);
        self.scope.pop();
    }
}

/// What a file of `shared/src` (path relative to it) does against the
/// rules, one line each naming the file and the import.
pub fn violations(rel: &str, source: &str) -> Vec<String> {
    let mut out = Vec::new();
    let scope = module_path(rel);
    let Some(own) = scope.first().cloned() else { return out }; // lib.rs declares the layers
    let Some(own_rank) = layer(&own) else {
        return vec![format!("{rel}: the top-level module `{own}` is in no layer of tests/architecture.rs")];
    };
    let file = match syn::parse_file(source) {
        Ok(f) => f,
        Err(e) => return vec![format!("{rel}: does not parse: {e}")],
    };
    let mut imports = Imports { scope, found: Vec::new() };
    imports.visit_file(&file);
    for (top, path) in imports.found {
        if top == own {
            continue;
        }
        match layer(&top) {
            Some(rank) if rank < own_rank || (rank == own_rank && rank == SHARED_RANK) => {}
            Some(rank) => out.push(format!(
                "{rel}: imports {path}, but `{top}` (layer {rank}) is not below `{own}` (layer {own_rank})"
            )),
            None => {}
        }
    }
    if own != "store" && own != "adapters" {
        let tokens: proc_macro2::TokenStream = source.parse().unwrap_or_default();
        key_literals(rel, tokens, &mut out);
    }
    out.sort();
    out.dedup();
    out
}

/// Table keys (`"CONN#…"`) and raw state-store access (`.store()`) outside
/// the store.
fn key_literals(rel: &str, tokens: proc_macro2::TokenStream, out: &mut Vec<String>) {
    use proc_macro2::TokenTree;
    let trees: Vec<TokenTree> = tokens.into_iter().collect();
    for (i, tree) in trees.iter().enumerate() {
        match tree {
            TokenTree::Group(g) => key_literals(rel, g.stream(), out),
            TokenTree::Literal(l) => {
                let text = l.to_string();
                let body = text.strip_prefix('"').unwrap_or("");
                let caps = body.chars().take_while(|c| c.is_ascii_uppercase()).count();
                if caps >= 2 && body[caps..].starts_with('#') {
                    out.push(format!("{rel}: builds the table key {text}; keys belong in shared/src/store/keys.rs"));
                }
            }
            TokenTree::Ident(id) if id == "store" => {
                let after_dot = i > 0 && matches!(&trees[i - 1], TokenTree::Punct(p) if p.as_char() == '.');
                let called = matches!(trees.get(i + 1), Some(TokenTree::Group(g)) if g.stream().is_empty());
                if after_dot && called {
                    out.push(format!("{rel}: reaches the raw state store (.store()); go through the store's Repo"));
                }
            }
            _ => {}
        }
    }
}

fn sources(dir: &Path, root: &Path, out: &mut BTreeMap<String, PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("shared/src is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            sources(&path, root, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(root).expect("under src").to_string_lossy().replace('\\', "/");
            out.insert(rel, path);
        }
    }
}

#[test]
fn every_module_imports_only_the_layers_below_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/src");
    let mut files = BTreeMap::new();
    sources(&root, &root, &mut files);
    assert!(files.len() > 40, "found only {} files under {}", files.len(), root.display());
    let mut all = Vec::new();
    for (rel, path) in &files {
        all.extend(violations(rel, &std::fs::read_to_string(path).unwrap()));
    }
    assert!(all.is_empty(), "the layers of shared/src are broken:\n{}", all.join("\n"));
    // Every top-level module is in the table (a new one must be placed).
    let tops: std::collections::BTreeSet<String> =
        files.keys().filter_map(|r| module_path(r).first().cloned()).collect();
    for top in tops {
        assert!(layer(&top).is_some(), "`{top}` is in no layer");
    }
}

#[test]
fn the_checker_catches_an_upward_import() {
    // A store module reaching up into the flows, in each way it could.
    assert_eq!(violations("store/planted.rs", "use crate::flows::App;").len(), 1);
    assert_eq!(violations("store/planted.rs", "use crate::{domain::Connection, entry::http::json};").len(), 1);
    assert_eq!(violations("store/planted.rs", "fn f() { crate::flows::sync::sync_now(); }").len(), 1);
    assert_eq!(violations("store/deep/planted.rs", "use super::super::super::wiring::App;").len(), 1);
    assert_eq!(violations("domain/planted.rs", "mod t { use crate::ports::Clock; }").len(), 1);
    // Siblings of one layer stay apart (but the pure core builds on itself).
    assert_eq!(violations("platform/planted.rs", "use crate::store::Repo;").len(), 1);
    assert!(violations("domain/planted.rs", "use crate::catalog::OAuthSpec;").is_empty());
    // Downward and own-module imports are fine.
    assert!(violations("flows/planted.rs", "use super::App; use crate::store::Repo; use crate::domain::*;").is_empty());
    assert!(violations("entry/http/h/x.rs", "use super::super::json; use crate::flows::App;").is_empty());
    // A module outside the table must be placed in it.
    assert_eq!(violations("newthing/x.rs", "").len(), 1);
}

#[test]
fn the_checker_catches_keys_and_raw_store_access_outside_the_store() {
    assert_eq!(violations("flows/planted.rs", r#"fn f() -> String { format!("CONN#{}", 1) }"#).len(), 1);
    assert_eq!(violations("flows/planted.rs", "async fn f(a: &A) { a.repo.store().get(1).await; }").len(), 1);
    assert!(violations("store/planted.rs", r#"fn f() -> String { format!("CONN#{}", 1) }"#).is_empty());
    assert!(violations("flows/planted.rs", r#"fn f() -> &'static str { "Connected #1" }"#).is_empty());
}
