//! The shape of `shared/src`, checked from its source: the top-level modules form
//! layers without a cycle, the leaves import nothing of the app, and only the
//! config module reads the environment. (docs/architecture.md draws the layers.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Value types and settings: what every layer may use, and which use nothing
/// but each other.
const LEAVES: [&str; 7] = [
    "domain_name",
    "network",
    "mail_from",
    "model",
    "config",
    "metrics",
    "keys",
];

fn source_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("readable source directory") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// The code of a file without its comments (doc comments name other modules).
fn code_of(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("readable source file");
    text.lines()
        .map(|line| match line.find("//") {
            // A `//` inside a string ("https://...") is not a comment.
            Some(at) if line[..at].matches('"').count() % 2 == 0 => &line[..at],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every top-level module (a file or a directory under src/) and its files.
fn modules() -> BTreeMap<String, Vec<PathBuf>> {
    let root = source_root();
    let mut modules = BTreeMap::new();
    for entry in std::fs::read_dir(&root).expect("src") {
        let path = entry.expect("entry").path();
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("utf-8 name")
            .to_string();
        if path.is_dir() {
            modules.insert(name, rust_files(&path));
        } else if name != "lib" && path.extension().is_some_and(|e| e == "rs") {
            modules.insert(name, vec![path]);
        }
    }
    modules
}

/// Which top-level modules each one names (`crate::x`, `crate::{x, ...}`).
fn imports(modules: &BTreeMap<String, Vec<PathBuf>>) -> BTreeMap<String, BTreeSet<String>> {
    let names: BTreeSet<&str> = modules.keys().map(String::as_str).collect();
    let mut graph = BTreeMap::new();
    for (module, files) in modules {
        let mut uses = BTreeSet::new();
        for file in files {
            let code = code_of(file);
            for (at, _) in code.match_indices("crate::") {
                let rest = &code[at + "crate::".len()..];
                let named: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
                    let group = &group[..group.find('}').unwrap_or(group.len())];
                    group
                        .split(',')
                        .filter_map(|item| item.split("::").next())
                        .map(str::trim)
                        .collect()
                } else {
                    rest.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                        .take(1)
                        .collect()
                };
                for name in named {
                    if names.contains(name) && name != module {
                        uses.insert(name.to_string());
                    }
                }
            }
        }
        graph.insert(module.clone(), uses);
    }
    graph
}

/// A cycle through `start`, if there is one.
fn cycle_from(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    fn walk(
        graph: &BTreeMap<String, BTreeSet<String>>,
        start: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        let last = path.last().cloned().unwrap_or_default();
        for next in graph.get(&last).into_iter().flatten() {
            if next == start {
                path.push(next.clone());
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(graph, start, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_string()];
    walk(graph, start, &mut path, &mut BTreeSet::new()).then_some(path)
}

#[test]
fn the_top_level_modules_form_no_cycle() {
    let graph = imports(&modules());
    assert!(graph.len() > 10, "the modules were found: {graph:?}");
    assert!(
        graph["handlers"].contains("domains"),
        "the reader sees imports"
    );
    let cycles: Vec<String> = graph
        .keys()
        .filter_map(|module| cycle_from(&graph, module))
        .map(|cycle| cycle.join(" -> "))
        .collect();
    assert!(cycles.is_empty(), "module cycles: {cycles:#?}");
}

#[test]
fn leaves_import_only_leaves() {
    let graph = imports(&modules());
    for leaf in LEAVES {
        let outside: Vec<&String> = graph[leaf]
            .iter()
            .filter(|used| !LEAVES.contains(&used.as_str()))
            .collect();
        assert!(
            outside.is_empty(),
            "{leaf} is a leaf but imports {outside:?}"
        );
    }
}

#[test]
fn only_the_config_modules_read_the_environment() {
    let config = source_root().join("config");
    let readers: Vec<PathBuf> = rust_files(&source_root())
        .into_iter()
        .filter(|file| !file.starts_with(&config))
        .filter(|file| {
            let code = code_of(file);
            code.contains("env::var") || code.contains("env::vars")
        })
        .collect();
    assert!(
        readers.is_empty(),
        "the environment is read outside config/: {readers:?}"
    );
}

#[test]
fn the_checker_sees_a_cycle_when_there_is_one() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(m, uses)| (m.to_string(), uses.into_iter().map(String::from).collect()))
    .collect();
    assert_eq!(
        cycle_from(&graph, "a"),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    assert_eq!(cycle_from(&graph, "d"), None);
}
