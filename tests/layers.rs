//! The layers of `src/` (README, "Architecture"), checked from the source:
//! every `crate::…` path outside `#[cfg(test)]` code, directly and through
//! modules that belong to no layer (`config`, `views`, `error`, …).
//!
//! | layer       | may not reach                                          |
//! |-------------|--------------------------------------------------------|
//! | `domain/`   | anything of ours outside `domain/`                     |
//! | `media/`    | the store, storage, bus, services, realtime, http, bench, the CLI |
//! | `storage/`  | the store, media, bus, services, realtime, http, bench, the CLI |
//! | `store/`    | the bus, services, realtime, http, bench, the CLI      |
//! | `bus/`      | services, realtime, http, bench, the CLI               |
//! | `services/` | realtime, http, bench, the CLI                         |
//! | `realtime/` | http, bench                                            |
//! | `http/`     | bench                                                  |

// Tests may unwrap: a panic is a failed test with a clear location.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const CLI: [&str; 4] = ["app", "main", "commands", "cli"];

/// The top-level modules `layer` may not reach (`None`: only itself).
fn forbidden(layer: &str) -> Option<Vec<&'static str>> {
    let mut list = match layer {
        "domain" => return None,
        "media" => vec![
            "store", "storage", "bus", "services", "realtime", "http", "bench",
        ],
        "storage" => vec![
            "store", "media", "bus", "services", "realtime", "http", "bench",
        ],
        "store" => vec!["bus", "services", "realtime", "http", "bench"],
        "bus" => vec!["services", "realtime", "http", "bench"],
        "services" => vec!["realtime", "http", "bench"],
        "realtime" => return Some(vec!["http", "bench"]),
        "http" => return Some(vec!["bench"]),
        _ => return Some(Vec::new()),
    };
    list.extend(CLI);
    Some(list)
}

const LAYERS: [&str; 8] = [
    "domain", "media", "storage", "store", "bus", "services", "realtime", "http",
];

/// One `crate::` path as written: the file it is in and the path.
#[derive(Clone)]
struct Import {
    file: String,
    path: String,
}

#[test]
fn layers_hold() {
    let files = rust_files(Path::new("src"));
    let test_only = test_only_files(&files);
    let mut imports: BTreeMap<String, Vec<Import>> = BTreeMap::new();
    for file in files.iter().filter(|f| !test_only.contains(*f)) {
        let relative = file
            .strip_prefix("src")
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let module = relative
            .trim_end_matches(".rs")
            .split('/')
            .next()
            .unwrap()
            .to_string();
        let source = std::fs::read_to_string(file).unwrap();
        let entries = imports.entry(module).or_default();
        for path in crate_paths(&without_tests(&source)) {
            entries.push(Import {
                file: format!("src/{relative}"),
                path,
            });
        }
    }

    let mut broken = Vec::new();
    for layer in LAYERS {
        let Some(own) = imports.get(layer) else {
            broken.push(format!(
                "src/{layer}: no such layer (renamed? then rename it here too)"
            ));
            continue;
        };
        let Some(forbidden) = forbidden(layer) else {
            for import in own {
                if top(&import.path) != layer {
                    broken.push(format!(
                        "{}: {} (domain/ may use nothing of ours outside domain/)",
                        import.file, import.path
                    ));
                }
            }
            continue;
        };
        // Walk what the layer names, following modules that belong to no layer.
        let mut seen = BTreeSet::from([layer.to_string()]);
        let mut queue: Vec<(Import, Vec<String>)> =
            own.iter().map(|i| (i.clone(), Vec::new())).collect();
        while let Some((import, via)) = queue.pop() {
            let target = top(&import.path).to_string();
            if forbidden.contains(&target.as_str()) {
                let through = if via.is_empty() {
                    String::new()
                } else {
                    format!(" (reached through {})", via.join(" → "))
                };
                broken.push(format!(
                    "{}: {}{through}: {layer}/ may not reach {target}",
                    import.file, import.path
                ));
                continue;
            }
            if LAYERS.contains(&target.as_str()) || !seen.insert(target.clone()) {
                continue;
            }
            for next in imports.get(&target).into_iter().flatten() {
                let mut via = via.clone();
                via.push(format!("{} ({})", import.path, import.file));
                queue.push((next.clone(), via));
            }
        }
    }
    broken.sort();
    broken.dedup();
    assert!(
        broken.is_empty(),
        "imports that break the layers:\n{}",
        broken.join("\n")
    );
}

/// The checker itself: it sees grouped, nested and inline paths, and skips tests.
#[test]
fn the_checker_reads_paths_as_written() {
    let source = "use crate::{store::Store, bus::{hub::Hub, Bus}};\n\
                  fn f() { crate::views::fnv(1); }\n\
                  #[cfg(test)]\nmod tests {\n use crate::http::router; fn g() { if true { } }\n}\n\
                  fn h() { crate::error::x() }\n";
    assert_eq!(
        crate_paths(&without_tests(source)),
        [
            "crate::store::Store",
            "crate::bus::hub::Hub",
            "crate::bus::Bus",
            "crate::views::fnv",
            "crate::error::x",
        ]
    );
    assert_eq!(forbidden("domain"), None);
    assert!(forbidden("services").unwrap().contains(&"realtime"));
}

fn top(path: &str) -> &str {
    path.trim_start_matches("crate::")
        .split("::")
        .next()
        .unwrap_or("")
}

/// Files declared as `#[cfg(test)] mod name;` (`src/store.rs` → `src/store/name.rs`).
fn test_only_files(files: &[PathBuf]) -> BTreeSet<PathBuf> {
    let mut test_only = BTreeSet::new();
    for file in files {
        let source = std::fs::read_to_string(file).unwrap();
        let dir = file.with_extension("");
        let mut rest = source.as_str();
        while let Some(at) = rest.find("#[cfg(test)]") {
            rest = rest[at + "#[cfg(test)]".len()..].trim_start();
            let Some(item) = rest.strip_prefix("mod ") else {
                continue;
            };
            if let Some((name, _)) = item.split_once(';')
                && !name.contains('{')
            {
                test_only.insert(dir.join(format!("{}.rs", name.trim())));
            }
        }
    }
    test_only
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The source without `#[cfg(test)]` items (a `mod tests { … }` block or the
/// one item that follows the attribute).
fn without_tests(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        // The item ends at `;` before any `{`, or at the brace closing its first `{`.
        let mut depth = 0usize;
        let mut end = after.len();
        for (i, c) in after.char_indices() {
            match c {
                ';' if depth == 0 => {
                    end = i + 1;
                    break;
                }
                '{' => depth += 1,
                '}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// Every `crate::a::b` path, with `{…}` groups expanded.
fn crate_paths(source: &str) -> Vec<String> {
    let mut paths = Vec::new();
    let mut rest = source;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at..];
        // `$crate::` and names ending in "crate" are not ours.
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            rest = &rest["crate::".len()..];
            continue;
        }
        let consumed = expand("crate", &rest["crate::".len()..], &mut paths);
        rest = &rest["crate::".len() + consumed..];
    }
    paths
}

/// Reads one path (after `prefix::`) from `text`; returns the bytes read.
fn expand(prefix: &str, text: &str, paths: &mut Vec<String>) -> usize {
    let text_start = text.len() - text.trim_start().len();
    let text = text.trim_start();
    if let Some(group) = text.strip_prefix('{') {
        let mut read = 1;
        let mut rest = group;
        loop {
            let skipped = rest.len() - rest.trim_start_matches([',', ' ', '\n', '\t']).len();
            rest = &rest[skipped..];
            read += skipped;
            if rest.starts_with('}') {
                return text_start + read + 1;
            }
            if rest.is_empty() {
                return text_start + read;
            }
            let used = expand(prefix, rest, paths);
            if used == 0 {
                return text_start + read;
            }
            rest = &rest[used..];
            read += used;
        }
    }
    let name_len = text
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    if name_len == 0 {
        return text_start;
    }
    let path = format!("{prefix}::{}", &text[..name_len]);
    match text[name_len..].strip_prefix("::") {
        Some(more) => {
            let used = expand(&path, more, paths);
            if used == 0 {
                paths.push(path);
            }
            text_start + name_len + 2 + used
        }
        None => {
            // `self` in a group names the prefix itself.
            paths.push(path.trim_end_matches("::self").to_string());
            text_start + name_len
        }
    }
}
