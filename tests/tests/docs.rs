//! DEBUGGING.md stays true: every code block says how it is checked, every test it names
//! exists, and every breakpoint it documents resolves in the hypervisor's ELF.

use std::process::Command;

use integration_tests::repo_path;

/// Fenced code blocks: (line number, lines).
fn code_blocks(text: &str) -> Vec<(usize, Vec<String>)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, Vec<String>)> = None;
    for (n, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            match current.take() {
                Some(block) => blocks.push(block),
                None => current = Some((n + 1, Vec::new())),
            }
        } else if let Some((_, lines)) = current.as_mut() {
            lines.push(line.to_string());
        }
    }
    blocks
}

fn test_sources() -> String {
    let mut all = String::new();
    for entry in std::fs::read_dir(repo_path("tests/tests")).expect("tests/tests") {
        all.push_str(&std::fs::read_to_string(entry.expect("entry").path()).expect("read"));
    }
    all
}

/// Proves: each DEBUGGING.md code block is marked "# tested: <test>" (naming a test that
/// exists) or "# interactive".
#[test]
fn every_debugging_recipe_is_tested_or_marked_interactive() {
    let text = std::fs::read_to_string(repo_path("DEBUGGING.md")).expect("DEBUGGING.md");
    let sources = test_sources();
    let blocks = code_blocks(&text);
    assert!(blocks.len() >= 10, "DEBUGGING.md has its recipes");
    for (line, lines) in blocks {
        let first = lines.first().map(String::as_str).unwrap_or("");
        if let Some(rest) = first.strip_prefix("# tested: ") {
            let name = rest.split_whitespace().next().unwrap_or("");
            assert!(sources.contains(&format!("fn {name}(")), "DEBUGGING.md:{line}: no test named {name}");
        } else {
            assert!(
                first.starts_with("# interactive"),
                "DEBUGGING.md:{line}: block lacks '# tested:' or '# interactive': {first:?}"
            );
        }
    }
}

/// Proves: every `break` command in DEBUGGING.md sets a breakpoint in build/hypervisor.elf.
#[test]
fn documented_breakpoints_exist() {
    let text = std::fs::read_to_string(repo_path("DEBUGGING.md")).expect("DEBUGGING.md");
    let breaks: Vec<String> = text.lines().filter(|l| l.starts_with("break ")).map(str::to_string).collect();
    assert!(breaks.len() >= 10, "the breakpoint list is there");
    let mut gdb = Command::new("gdb-multiarch");
    gdb.args(["-q", "-batch", "-nx"]).arg(repo_path("build/hypervisor.elf"));
    for b in &breaks {
        gdb.args(["-ex", b]);
    }
    let out = gdb.output().expect("gdb-multiarch runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!text.contains("not defined"), "a documented breakpoint does not resolve:\n{text}");
    assert_eq!(text.matches("Breakpoint ").count(), breaks.len(), "one breakpoint per command:\n{text}");
}

/// Proves: with scripts/gdb/hyp.py (what `make gdb` loads), `hyp-break <short name>` sets a
/// breakpoint for every function of DEBUGGING.md's breakpoint table, including the HRT's
/// `hrt_main` (plain `break` needs the full Rust path).
#[test]
fn short_breakpoint_names_resolve() {
    let text = std::fs::read_to_string(repo_path("DEBUGGING.md")).expect("DEBUGGING.md");
    let breaks: Vec<String> = text.lines().filter(|l| l.starts_with("hyp-break ")).map(str::to_string).collect();
    assert!(breaks.len() >= 12, "the short-name list is there: {breaks:?}");
    let mut gdb = Command::new("gdb-multiarch");
    gdb.args(["-q", "-batch", "-nx", "-x"]).arg(repo_path("scripts/gdb/hyp.py")).arg(repo_path("build/hypervisor.elf"));
    for b in &breaks {
        gdb.args(["-ex", b]);
    }
    let out = gdb.output().expect("gdb-multiarch runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!text.contains("not defined"), "a short name does not resolve:\n{text}");
    assert!(!text.contains("Python Exception"), "{text}");
    assert!(text.matches("Breakpoint ").count() >= breaks.len(), "a breakpoint per name:\n{text}");
    assert!(text.contains("hrt::hrt_main") || text.contains("file src/main.rs"), "the HRT's symbols: {text}");
}
