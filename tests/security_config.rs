//! Issue 12, the routes file: secrets substituted into it never show in an
//! error (`validate`, a refused reload), and the parser's budgets follow
//! the file's size: 10,000 routes load, an alias bomb does not.

use std::path::{Path, PathBuf};
use std::process::Command;

use saltbridge::config::load_str;

const TOKEN: &str = "s3cr3t-T0KEN-value";
const FILE_SECRET: &str = "p4ss-from-a-file";

fn validate(dir: &Path, yaml: &str) -> (Option<i32>, String) {
    let routes = dir.join("routes.yaml");
    std::fs::write(&routes, yaml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_saltbridge"))
        .args(["validate", "-c"])
        .arg(&routes)
        .env("HOOK_TOKEN", TOKEN)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    (out.status.code(), text)
}

fn secret_file(dir: &Path) -> PathBuf {
    let p = dir.join("secret");
    std::fs::write(&p, format!("{FILE_SECRET}\n")).unwrap();
    p
}

#[test]
fn validate_shows_the_file_as_written_never_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let secret = secret_file(dir.path());
    let s = secret.display();
    // Each file fails somewhere different: the YAML parser, the checks,
    // a sink's own checks; each with a secret on the line or in the value.
    #[allow(clippy::useless_format)] // one shape for every case
    let cases = [
        format!("sinks:\n  chat: {{type: webhook, url: 'http://x/${{HOOK_TOKEN}}', concurrency: ${{HOOK_TOKEN}}}}\n"),
        format!("sinks:\n  chat:\n    type: webhook\n    url: 'http://x'\n    timeout: ${{HOOK_TOKEN}}\n"),
        format!("sinks:\n  chat:\n    type: webhook\n    url: 'http://x'\n    retry: {{give_up_after: '${{file:{s}}}'}}\n"),
        format!("routes:\n  - name: a\n    match: {{tag: 'x', where: {{id: {{regex: '(${{HOOK_TOKEN}}'}}}}}}\n"),
        format!("sinks:\n  chat: {{type: webhook, url: '${{file:{s}}}'}}\n"),
        format!("sinks:\n  chat: {{type: webhook, url: 'http://x', headers: {{X-Key: ${{HOOK_TOKEN}}}}, bogus: 1}}\n"),
        format!("twins: {{window: ${{HOOK_TOKEN}}}}\n"),
    ];
    for yaml in &cases {
        let (code, out) = validate(dir.path(), yaml);
        assert_eq!(code, Some(78), "{yaml}\n{out}");
        assert!(
            !out.contains(TOKEN) && !out.contains(FILE_SECRET),
            "a secret is printed:\n{yaml}\n{out}"
        );
    }
    // The snippet shows the placeholder as written.
    let (_, out) = validate(dir.path(), &cases[6]);
    assert!(out.contains("${HOOK_TOKEN}"), "{out}");
}

#[test]
fn errors_keep_positions_of_the_file_as_written() {
    // `5` is at column 54 as written, 53 after substitution.
    let yaml = "sinks: {a: {type: blackhole, x: \"${HOOK_TOKEN}\"}, b: 5}\n";
    let e = load_str(Path::new("r.yaml"), yaml, |_| Some(TOKEN.to_owned())).unwrap_err();
    let text = e.to_string();
    assert!(!text.contains(TOKEN), "{text}");
    assert_eq!((e.0[0].line, e.0[0].column), (1, 54), "{text}");
}

/// A routes file as the docs write one: block style, one route per
/// minion group, a `where`, a dedup.
fn many_routes(n: usize) -> String {
    let mut y = String::from("sinks:\n  chat: {type: webhook, url: 'http://x'}\nroutes:\n");
    for k in 0..n {
        y += &format!(
            "  - name: route-{k}\n    match:\n      tag: 'salt/job/*/ret/web-{k:05}'\n      where:\n        fun: state.apply\n        retcode: {{gt: 0}}\n        id: {{in: [web-{k}, db-{k}, cache-{k}]}}\n    dedup:\n      key: '{{{{ data.jid }}}}'\n      ttl: 10m\n    to: [chat]\n"
        );
    }
    y
}

#[test]
fn ten_thousand_routes_load() {
    let yaml = many_routes(10_000);
    let config = load_str(Path::new("big.yaml"), &yaml, |_| None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.routes.route_names().count(), 10_000);
}

#[test]
fn an_alias_bomb_is_refused() {
    let mut y = String::from(
        "sinks:\n  s:\n    type: blackhole\n    a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n",
    );
    for i in 1..10 {
        let p = i - 1;
        y += &format!("    a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n");
    }
    let e = load_str(Path::new("bomb.yaml"), &y, |_| None).unwrap_err();
    assert!(e.to_string().contains("budget"), "{e}");
}

#[test]
fn sink_names_that_are_not_one_path_part_are_refused() {
    for name in ["a/b", "../../x", "..", "-rf"] {
        let yaml = format!("sinks:\n  '{name}': {{type: blackhole}}\n");
        let e = load_str(Path::new("r.yaml"), &yaml, |_| None).unwrap_err();
        assert_eq!(e.0[0].line, 2, "{e}");
        assert!(e.to_string().contains("a sink's name"), "{e}");
    }
}
