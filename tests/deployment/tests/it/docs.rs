//! The front door: the README stays short, and every link in the docs leads to a
//! file of this repository that exists (none leaves it).

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

/// The markdown files a reader meets: README, BENCHMARKS and everything in docs/.
fn documents() -> Vec<PathBuf> {
    let root = root();
    let mut files = vec![root.join("README.md"), root.join("BENCHMARKS.md")];
    for entry in std::fs::read_dir(root.join("docs")).expect("docs/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "md") {
            files.push(path);
        }
    }
    files
}

/// The targets of `[text](target)` links.
fn links(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("](") {
        rest = &rest[at + 2..];
        if let Some(end) = rest.find(')') {
            found.push(rest[..end].to_string());
            rest = &rest[end..];
        }
    }
    found
}

#[test]
fn the_readme_is_the_short_front_door() {
    let size = std::fs::metadata(root().join("README.md"))
        .expect("README")
        .len();
    assert!(size <= 14_000, "README.md is {size} bytes (at most 14,000)");
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README");
    for section in [
        "## The two commands",
        "## Walkthrough",
        "## Configuration",
        "## Deploying to AWS",
        "## Map",
    ] {
        assert!(readme.contains(section), "README lacks {section}");
    }
    for doc in documents()
        .iter()
        .filter(|d| d.parent() == Some(&root().join("docs")))
    {
        let name = doc.file_name().and_then(|n| n.to_str()).expect("name");
        assert!(
            readme.contains(&format!("(docs/{name})")),
            "the README's map lacks docs/{name}"
        );
    }
}

#[test]
fn every_link_stays_in_the_repository_and_exists() {
    let root = root();
    let mut checked = 0;
    for document in documents() {
        let text = std::fs::read_to_string(&document).expect("document");
        let base = document.parent().expect("folder");
        for link in links(&text) {
            assert!(
                !link.contains("://") && !link.starts_with("mailto:"),
                "{}: {link} leaves the repository",
                document.display()
            );
            let path = link.split('#').next().unwrap_or_default();
            if path.is_empty() {
                continue;
            }
            let target = base
                .join(path)
                .canonicalize()
                .unwrap_or_else(|_| panic!("{}: {link} does not exist", document.display()));
            assert!(
                target.starts_with(&root),
                "{}: {link} points outside the repository",
                document.display()
            );
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} links found");
}
