//! The engine's layers, held to ARCHITECTURE.md: which layer may use which
//! (`model ← catalog ← plan ← apply → backends`), and no import cycles
//! between the engine's source files. Reads the sources; no network.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What each layer (a top-level module of `engine/src`) must not use.
const FORBIDDEN: &[(&str, &[&str])] = &[
    ("model", &["catalog", "plan", "apply", "observe", "backends", "registry", "config", "platform", "cli"]),
    ("catalog", &["plan", "apply", "observe", "backends", "registry", "config", "platform", "cli"]),
    ("plan", &["apply", "observe", "backends", "registry", "config", "platform", "cli"]),
    ("observe", &["plan", "apply", "platform", "cli"]),
    ("registry", &["catalog", "plan", "apply", "observe", "backends", "platform", "cli"]),
    ("backends", &["catalog", "plan", "apply", "observe", "registry", "platform", "cli"]),
    ("config", &["catalog", "plan", "apply", "observe", "backends", "registry", "platform", "cli"]),
    ("apply", &["platform", "cli"]),
    ("platform", &["cli"]),
];

/// Every `.rs` file under `dir`, as module paths (`apply::domain`,
/// `backends` for `backends/mod.rs`) with their file.
fn modules(root: &Path, dir: &Path, found: &mut BTreeMap<String, PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|error| panic!("cannot read {}: {error}", dir.display()));
    for entry in entries {
        let path = entry.unwrap_or_else(|error| panic!("cannot read {}: {error}", dir.display())).path();
        if path.is_dir() {
            modules(root, &path, found);
            continue;
        }
        if path.extension().is_none_or(|extension| extension != "rs") {
            continue;
        }
        let relative = path.strip_prefix(root).expect("under the root").with_extension("");
        let mut parts: Vec<String> =
            relative.components().map(|part| part.as_os_str().to_string_lossy().into_owned()).collect();
        if parts.last().is_some_and(|last| last == "mod" || last == "lib") {
            parts.pop();
        }
        found.insert(parts.join("::"), path);
    }
}

/// The source without its `#[cfg(test)]` modules (tests may use anything).
fn without_tests(source: &str) -> &str {
    match source.find("#[cfg(test)]\nmod tests") {
        Some(index) => &source[..index],
        None => source,
    }
}

/// The modules `source` names through `crate::` paths, each resolved to the
/// longest module path that is a file (`crate::apply::domain::proxy_to`
/// is `apply::domain`; `crate::backends::error_chain` is `backends`).
fn uses(source: &str, known: &BTreeMap<String, PathBuf>) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    for (index, _) in source.match_indices("crate::") {
        let rest = &source[index + "crate::".len()..];
        let path: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':').collect();
        let segments: Vec<&str> = path.split("::").filter(|segment| !segment.is_empty()).collect();
        let module = (1..=segments.len())
            .rev()
            .map(|length| segments[..length].join("::"))
            .find(|candidate| known.contains_key(candidate));
        if let Some(module) = module {
            used.insert(module);
        }
    }
    used
}

fn layer(module: &str) -> &str {
    module.split("::").next().unwrap_or(module)
}

/// The engine's module graph: each module and the modules it uses.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut known = BTreeMap::new();
    modules(&root, &root, &mut known);
    assert!(known.len() > 30, "the engine's sources were not found under {}", root.display());
    known
        .iter()
        .map(|(module, path)| {
            let source =
                std::fs::read_to_string(path).unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
            let mut used = uses(without_tests(&source), &known);
            used.remove(module);
            (module.clone(), used)
        })
        .collect()
}

#[test]
fn each_layer_uses_only_the_layers_below_it() {
    let graph = graph();
    let mut violations = Vec::new();
    for (module, used) in &graph {
        let Some((_, forbidden)) = FORBIDDEN.iter().find(|(name, _)| *name == layer(module)) else { continue };
        for target in used {
            if forbidden.contains(&layer(target)) {
                violations.push(format!("{module} uses {target}"));
            }
        }
    }
    assert!(violations.is_empty(), "layer rules broken (see ARCHITECTURE.md):\n{}", violations.join("\n"));
}

#[test]
fn no_two_engine_modules_use_each_other_even_through_others() {
    let graph = graph();
    let mut cycles = Vec::new();
    for start in graph.keys() {
        // Every module reachable from `start`; a path back to it is a cycle.
        let mut seen = BTreeSet::new();
        let mut stack: Vec<(String, Vec<String>)> = vec![(start.clone(), vec![start.clone()])];
        while let Some((module, path)) = stack.pop() {
            for next in graph.get(&module).into_iter().flatten() {
                if next == start {
                    let mut cycle = path.clone();
                    cycle.push(start.clone());
                    cycles.push(cycle.join(" -> "));
                } else if seen.insert(next.clone()) {
                    let mut longer = path.clone();
                    longer.push(next.clone());
                    stack.push((next.clone(), longer));
                }
            }
        }
    }
    cycles.sort();
    cycles.dedup();
    assert!(cycles.is_empty(), "import cycles between engine modules:\n{}", cycles.join("\n"));
}

#[test]
fn the_checks_see_a_forbidden_use_and_a_cycle() {
    let known: BTreeMap<String, PathBuf> =
        ["model::tenant", "catalog", "apply::domain"].into_iter().map(|m| (m.to_owned(), PathBuf::new())).collect();
    let used = uses("use crate::catalog::Catalog;\nlet x = crate::apply::domain::proxy_to(y);", &known);
    assert_eq!(used, BTreeSet::from(["catalog".to_owned(), "apply::domain".to_owned()]));
    assert_eq!(without_tests("a\n#[cfg(test)]\nmod tests { crate::apply }"), "a\n");
}
