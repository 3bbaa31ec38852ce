//! The rules of the house (DESIGN.md §3), checked on the sources: each crate depends
//! only on the crates below it in the table, transport types stop at `noroshi-api`, and
//! no module of a crate imports a module that imports it back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `(crate directory, its name, the noroshi crates and the other crates it depends on)`.
fn crates() -> Vec<(PathBuf, String, BTreeSet<String>)> {
    let root: toml::Value =
        toml::from_str(&std::fs::read_to_string(workspace().join("Cargo.toml")).unwrap()).unwrap();
    root["workspace"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|member| {
            let dir = workspace().join(member.as_str().unwrap());
            let manifest: toml::Value =
                toml::from_str(&std::fs::read_to_string(dir.join("Cargo.toml")).unwrap()).unwrap();
            let name = manifest["package"]["name"].as_str().unwrap().to_owned();
            // Optional dependencies come with a feature another crate asks for
            // (noroshi-proto's gRPC stubs, for noroshi-api).
            let dependencies = manifest
                .get("dependencies")
                .and_then(toml::Value::as_table)
                .map(|table| {
                    table
                        .iter()
                        .filter(|(_, spec)| {
                            spec.get("optional").and_then(toml::Value::as_bool) != Some(true)
                        })
                        .map(|(name, _)| name.clone())
                        .collect()
                })
                .unwrap_or_default();
            (dir, name, dependencies)
        })
        .collect()
}

#[test]
fn each_crate_depends_only_on_the_crates_below_it() {
    // DESIGN.md §3: what each crate may depend on, of the workspace's crates.
    let allowed: BTreeMap<&str, &[&str]> = [
        ("noroshi-proto", &[][..]),
        ("noroshi-domain", &[]),
        ("noroshi-event-store", &[]),
        (
            "noroshi-codec",
            &["noroshi-proto", "noroshi-domain", "noroshi-event-store"],
        ),
        (
            "noroshi-projections",
            &[
                "noroshi-proto",
                "noroshi-domain",
                "noroshi-codec",
                "noroshi-event-store",
            ],
        ),
        (
            "noroshi-app",
            // The after-action report's figures are interop's to write out.
            &[
                "noroshi-domain",
                "noroshi-codec",
                "noroshi-event-store",
                "noroshi-interop",
            ],
        ),
        // Data in and out: files to domain values and rows to files, no I/O of its own.
        ("noroshi-interop", &["noroshi-domain"]),
        // The identity crate classifies PostgreSQL failures as the event store does.
        (
            "noroshi-identity",
            &["noroshi-domain", "noroshi-event-store"],
        ),
        (
            "noroshi-api",
            &[
                "noroshi-app",
                "noroshi-projections",
                "noroshi-identity",
                "noroshi-interop",
                "noroshi-proto",
                "noroshi-codec",
                "noroshi-domain",
                "noroshi-event-store",
            ],
        ),
        ("noroshi-simulator", &[]),
    ]
    .into_iter()
    .collect();
    let transports = [
        "axum",
        "tonic",
        "tonic-health",
        "tonic-reflection",
        "tonic-types",
        "tower",
        "cookie",
    ];
    for (_, name, dependencies) in crates() {
        let Some(allowed) = allowed.get(name.as_str()) else {
            continue;
        };
        for dependency in &dependencies {
            if dependency.starts_with("noroshi") {
                assert!(
                    allowed.contains(&dependency.as_str()),
                    "{name} depends on {dependency}"
                );
            }
            if name != "noroshi-api" && name != "noroshi-simulator" {
                assert!(
                    !transports.contains(&dependency.as_str()),
                    "{name} depends on the transport crate {dependency}"
                );
            }
        }
    }
}

/// The module path of a source file of a crate.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

fn sources(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// The modules a module's code (outside its tests and comments) names through
/// `crate::` or `super::`, as the longest module path named; its own ancestors and
/// descendants left out, since a module declares its children.
fn imports(
    module: &[String],
    text: &str,
    modules: &BTreeSet<Vec<String>>,
) -> BTreeSet<Vec<String>> {
    let code: String = text
        .split("#[cfg(test)]")
        .next()
        .unwrap_or_default()
        .lines()
        .map(|line| line.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    let mut named = BTreeSet::new();
    for (prefix, base) in [
        ("crate::", Vec::new()),
        ("super::", module[..module.len().saturating_sub(1)].to_vec()),
    ] {
        for (at, _) in code.match_indices(prefix) {
            let before = code[..at].chars().last();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let mut path = base.clone();
            path.extend(
                code[at + prefix.len()..]
                    .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                    .next()
                    .unwrap_or_default()
                    .split("::")
                    .filter(|part| {
                        !part.is_empty()
                            && part
                                .chars()
                                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                    })
                    .map(str::to_owned),
            );
            while !path.is_empty() && !modules.contains(&path) {
                path.pop();
            }
            let related = path.len() <= module.len() && module[..path.len()] == path[..]
                || path.len() > module.len() && path[..module.len()] == module[..];
            if !related {
                named.insert(path);
            }
        }
    }
    named
}

#[test]
fn no_module_imports_a_module_that_imports_it() {
    let mut cycles = Vec::new();
    for (dir, name, _) in crates() {
        let src = dir.join("src");
        if !src.is_dir() {
            continue;
        }
        let mut files = Vec::new();
        sources(&src, &mut files);
        let modules: BTreeMap<Vec<String>, PathBuf> = files
            .iter()
            .map(|f| (module_of(&src, f), f.clone()))
            .collect();
        let known: BTreeSet<Vec<String>> = modules.keys().cloned().collect();
        let edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = modules
            .iter()
            .map(|(module, file)| {
                let text = std::fs::read_to_string(file).unwrap();
                (module.clone(), imports(module, &text, &known))
            })
            .collect();
        // A module that reaches itself through its imports is in a cycle.
        for start in edges.keys() {
            let mut seen = BTreeSet::new();
            let mut stack: Vec<Vec<String>> = edges[start].iter().cloned().collect();
            while let Some(next) = stack.pop() {
                if &next == start {
                    cycles.push(format!("{name}: {}", start.join("::")));
                    break;
                }
                if seen.insert(next.clone()) {
                    stack.extend(edges.get(&next).into_iter().flatten().cloned());
                }
            }
        }
    }
    assert!(cycles.is_empty(), "modules in an import cycle: {cycles:#?}");
}
