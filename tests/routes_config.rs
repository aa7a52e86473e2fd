//! routes.yaml: every broken config gives a located error; globs agree with
//! Python's fnmatch; the example file validates.

use std::path::Path;

use saltbridge::config::load_str;
use saltbridge::route::TagGlobs;

fn env(k: &str) -> Option<String> {
    match k {
        "HOOK" => Some("https://hooks.example/x".into()),
        _ => None,
    }
}

const SINKS: &str =
    "sinks:\n  chat: {type: webhook, url: 'http://x'}\n  kafka: {type: kafka, topic: t}\n";

/// (what, yaml, line, field, message part)
const BROKEN: &[(&str, &str, u64, &str, &str)] = &[
    ("unknown top-level field", "rotues: []\n", 1, "rotues", "unknown field `rotues`"),
    ("unknown route field", "routes:\n  - name: a\n    contine: true\n", 3, "routes[0].contine", "unknown field `contine`"),
    ("unknown match field", "routes:\n  - name: a\n    match:\n      tags: x\n", 4, "routes[0].match.tags", "unknown field `tags`"),
    ("unknown twins field", "twins:\n  minion_starts: false\n", 2, "twins.minion_starts", "unknown field"),
    ("unknown drop preset", "drop:\n  findjob: true\n", 2, "drop.findjob", "unknown field `findjob`"),
    ("bad duration", "twins:\n  window: 2 parsecs\n", 2, "twins.window", "expected a duration"),
    ("continue not a bool", "routes:\n  - name: a\n    continue: maybe\n", 3, "routes[0].continue", "bool"),
    ("routes not a list", "routes: {a: 1}\n", 1, "routes", ""),
    ("route without name", "routes:\n  - to: []\n", 2, "routes[0]", "name"),
    ("unknown operator", "routes:\n  - name: a\n    match:\n      where: {retcode: {gtt: 0}}\n", 4, "routes[0].match.where", "did you mean `gt`"),
    ("bad regex in where", "routes:\n  - name: a\n    match:\n      where: {id: {regex: '(web'}}\n", 4, "routes[0].match.where", "bad regex"),
    ("big unquoted jid", "routes:\n  - name: a\n    match:\n      where: {jid: 20261126135646965819}\n", 4, "routes[0].match.where", "quote it"),
    ("list as a condition", "routes:\n  - name: a\n    match:\n      where: {fun: [a, b]}\n", 4, "routes[0].match.where", "{in: [...]}"),
    ("bad path", "routes:\n  - name: a\n    match:\n      where: {'arg[x]': 1}\n", 4, "routes[0].match.where", "path"),
    ("unknown sink", "routes:\n  - name: a\n    to: [caht]\n", 3, "routes[0].to[0]", "unknown sink `caht`"),
    ("unknown sink in unmatched", "unmatched: [nowhere]\n", 1, "unmatched[0]", "unknown sink `nowhere`"),
    ("bad unmatched keyword", "unmatched: dorp\n", 1, "unmatched", "expected `drop`"),
    ("bad tag regex", "routes:\n  - name: a\n    match:\n      tag_regex: 'salt/(job'\n", 4, "routes[0].match.tag_regex", "bad regex"),
    ("empty route name", "routes:\n  - name: ''\n", 2, "routes[0].name", "needs a name"),
    ("glob with spaces", "routes:\n  - name: a\n    match:\n      tag: 'salt/job/* '\n", 4, "routes[0].match.tag", "spaces"),
    ("glob with leading slash", "routes:\n  - name: a\n    match:\n      tag: '/salt/job/*'\n", 4, "routes[0].match.tag", "starts with '/'"),
    ("empty glob", "routes:\n  - name: a\n    match:\n      tag: ''\n", 4, "routes[0].match.tag", "empty"),
    ("shadowed route", "routes:\n  - name: all\n    match: {tag: '*'}\n    to: [chat]\n  - name: rets\n    match: {tag: 'salt/job/*/ret/*'}\n    to: [kafka]\n", 5, "routes[1].match", "can never match"),
    ("duplicate route name", "routes:\n  - name: a\n    match: {tag: x}\n  - name: a\n    match: {tag: z}\n", 4, "routes[1].name", "is already used on line"),
    ("glob read as a boolean", "routes:\n  - name: a\n    match: {tag: yes}\n", 3, "routes[0].match.tag", "quote"),
    ("bad dedup template", "routes:\n  - name: a\n    dedup: {key: '{{ data.jid '}\n", 3, "routes[0].dedup.key", "bad template"),
    ("unset env var", "sinks:\n  chat: {type: webhook, url: '${NOPE}'}\n", 2, "", "NOPE is not set"),
    ("unreadable secret file", "sinks:\n  chat: {type: webhook, token: '${file:/nonexistent/secret}'}\n", 2, "", "cannot read /nonexistent/secret"),
    ("bad source", "source: http://master\n", 1, "source", "expected ipc:PATH"),
    ("sink not a map", "sinks:\n  chat: http://x\n", 2, "sinks.chat", "map"),
    ("yaml syntax", "routes: [\n", 1, "", "unclosed"),
    ("unknown jobs field", "jobs:\n  timout: 5s\n", 2, "jobs.timout", "did you mean `timeout`"),
    ("zero jobs timeout", "jobs:\n  timeout: 0s\n", 2, "jobs.timeout", "longer than 0s"),
    ("bad gather_job_timeout", "jobs:\n  gather_job_timeout: ten\n", 2, "jobs.gather_job_timeout", "duration"),
    ("zero max_jobs", "jobs:\n  max_jobs: 0\n", 2, "jobs.max_jobs", "nonzero"),
    ("zero per-function wait", "jobs:\n  wait:\n    'state.*': 0s\n", 3, "jobs.wait", "longer than 0s"),
    ("bad per-function wait", "jobs:\n  wait:\n    'state.*': soon\n", 3, "jobs.wait", "duration"),
    ("wait not a map", "jobs:\n  wait: [state.apply]\n", 2, "jobs.wait", "a map from a glob"),
    ("misspelt max_job_bytes", "jobs:\n  max_jobs_bytes: 1MiB\n", 2, "jobs.max_jobs_bytes", "did you mean `max_job_bytes`"),
    ("bad max_job_bytes", "jobs:\n  max_job_bytes: lots\n", 2, "jobs.max_job_bytes", "expected a size such as 1GiB"),
    ("zero max_tracked_bytes", "jobs:\n  max_tracked_bytes: 0\n", 2, "jobs.max_tracked_bytes", "at least 1 byte"),
];

#[test]
fn every_broken_config_names_line_field_and_problem() {
    assert!(BROKEN.len() >= 20);
    for (what, yaml, line, field, msg) in BROKEN {
        let text = if yaml.starts_with("sinks:") {
            yaml.to_string()
        } else {
            format!("{SINKS}{yaml}")
        };
        let offset = if yaml.starts_with("sinks:") {
            0
        } else {
            SINKS.lines().count() as u64
        };
        let errs = match load_str(Path::new("routes.yaml"), &text, env) {
            Ok(_) => panic!("{what}: accepted"),
            Err(e) => e.0,
        };
        let e = &errs[0];
        let shown = e.to_string();
        assert_eq!(e.line, line + offset, "{what}: line in {shown}");
        assert!(e.column > 0, "{what}: column in {shown}");
        assert!(
            e.field.starts_with(field),
            "{what}: field {:?} in {shown}",
            e.field
        );
        assert!(shown.contains(msg), "{what}: message in {shown}");
        assert!(
            shown.starts_with(&format!("routes.yaml:{}:", line + offset)),
            "{what}: {shown}"
        );
    }
}

#[test]
fn unknown_fields_suggest_the_close_one() {
    let errs = load_str(
        Path::new("r.yaml"),
        "routes:\n  - name: a\n    contine: true\n",
        env,
    )
    .unwrap_err();
    assert_eq!(errs.0[0].hint.as_deref(), Some("did you mean `continue`?"));
    let errs = load_str(
        Path::new("r.yaml"),
        &format!("{SINKS}routes:\n  - name: a\n    to: [caht]\n"),
        env,
    )
    .unwrap_err();
    assert_eq!(errs.0[0].hint.as_deref(), Some("did you mean `chat`?"));
}

#[test]
fn all_semantic_problems_are_reported_at_once() {
    let yaml = format!("{SINKS}routes:\n  - name: a\n    match: {{tag: a}}\n    to: [x, z]\n  - name: b\n    match: {{tag_regex: '('}}\n");
    let errs = load_str(Path::new("r.yaml"), &yaml, env).unwrap_err();
    assert_eq!(errs.0.len(), 3, "{errs}");
}

#[test]
fn env_substitution_and_merge_keys() {
    let yaml = "sinks:\n  base: &base {type: webhook, url: '${HOOK}'}\n  chat:\n    <<: *base\n    preset: slack\nroutes:\n  - name: a\n    to: [chat]\n";
    let table = load_str(Path::new("r.yaml"), yaml, env).unwrap();
    assert_eq!(table.sinks()["chat"]["url"], "https://hooks.example/x");
    assert_eq!(table.sinks()["chat"]["preset"], "slack");
}

#[test]
fn the_example_routes_file_validates() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("routes.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let table = load_str(&path, &text, |_| None).unwrap_or_else(|e| panic!("{e}"));
    assert!(table.routes.route_names().count() >= 3);
}

#[test]
fn tag_globs_agree_with_python_fnmatch() {
    let table = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fnmatch_table.json");
    let rows: Vec<(String, String, bool)> =
        serde_json::from_str(&std::fs::read_to_string(table).unwrap()).unwrap();
    assert!(rows.len() > 500);
    let mut wrong = Vec::new();
    for (pattern, tag, want) in &rows {
        let got = TagGlobs::new(&[pattern]).is_match(tag);
        if got != *want {
            wrong.push(format!(
                "fnmatch({tag:?}, {pattern:?}) = {want}, saltbridge says {got}"
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} disagreements:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn job_byte_budgets_are_read_like_other_byte_sizes() {
    let yaml = "jobs:\n  max_job_bytes: 2MiB\n  max_tracked_bytes: 500000000\n";
    let config = load_str(Path::new("routes.yaml"), yaml, env).unwrap();
    assert_eq!(config.jobs.max_job_bytes, 2 << 20);
    assert_eq!(config.jobs.max_tracked_bytes, 500_000_000);
    let config = load_str(Path::new("routes.yaml"), "jobs: {}\n", env).unwrap();
    assert_eq!(
        (config.jobs.max_job_bytes, config.jobs.max_tracked_bytes),
        (192 << 20, 256 << 20),
        "defaults"
    );
}

/// `validate` checks each sink's own settings: a misspelt field or value
/// gets a "did you mean", new fields included (the Teams connector preset,
/// CloudEvents, OAuth 2.0).
#[test]
fn misspelt_sink_settings_suggest_the_close_one() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "presett: slack",
            "sinks.chat.presett",
            "did you mean `preset`?",
        ),
        (
            "preset: teams_conector",
            "sinks.chat.preset",
            "did you mean `teams_connector`?",
        ),
        (
            "format: cloudevent",
            "sinks.chat.format",
            "did you mean `cloudevents`?",
        ),
        (
            "format: cloudevents, cloudevents: {mdoe: binary}",
            "sinks.chat.cloudevents.mdoe",
            "did you mean `mode`?",
        ),
        (
            "auth: {oauht2: {}}",
            "sinks.chat.auth",
            "did you mean `oauth2`?",
        ),
        (
            "auth: {oauth2: {token_url: 'http://t/', client_id: a, client_secret: b, scop: x}}",
            "sinks.chat.auth.oauth2.scop",
            "did you mean `scope`?",
        ),
    ];
    for (setting, field, hint) in cases {
        let text = format!("sinks:\n  chat: {{type: webhook, url: 'http://x', {setting}}}\n");
        let path = dir.path().join("routes.yaml");
        std::fs::write(&path, &text).unwrap();
        let errs = match saltbridge::config::check(&path) {
            Ok(_) => panic!("{setting}: accepted"),
            Err(e) => e.0,
        };
        let e = &errs[0];
        assert_eq!(e.line, 2, "{setting}: {e}");
        assert_eq!(e.field, field, "{setting}: {e}");
        assert_eq!(e.hint.as_deref(), Some(hint), "{setting}: {e}");
    }
}

#[test]
fn saltapi_source_settings_are_checked_with_did_you_mean() {
    let err = |yaml: &str| match load_str(Path::new("routes.yaml"), yaml, env) {
        Ok(_) => panic!("accepted: {yaml}"),
        Err(e) => e.to_string(),
    };
    let e = err("source:\n  spec: saltapi:https://salt:8000\n  saltapi:\n    tokn: x\n");
    assert!(
        e.contains("routes.yaml:4:") && e.contains("did you mean `token`"),
        "{e}"
    );
    let e = err("source:\n  spec: ipc:/x.ipc\n  saltapi: {token: x}\n");
    assert!(
        e.contains("source.saltapi") && e.contains("saltapi: source"),
        "{e}"
    );
    let e = err("source:\n  spec: saltapi:https://salt:8000\n  saltapi: {username: u}\n");
    assert!(e.contains("source.saltapi.password"), "{e}");
    let e = err("source:\n  spec: saltapi:https://salt:8000\n  saltapi: {token: a, username: u}\n");
    assert!(e.contains("source.saltapi.token"), "{e}");
    let e = err("source:\n  sepc: saltapi:https://salt:8000\n");
    assert!(e.contains("did you mean `spec`"), "{e}");
    let e = err("source: saltapi:ftp://salt\n");
    assert!(e.contains("saltapi:https://HOST:PORT"), "{e}");
}

#[test]
fn saltapi_settings_reach_the_source_and_secrets_stay_hidden() {
    let env = |k: &str| (k == "TOK").then(|| "tok-very-secret".to_owned());
    let yaml = "source:\n  spec: saltapi:https://salt:8000/\n  saltapi:\n    token: ${TOK}\n    ca_file: /etc/ca.pem\n";
    let config = load_str(Path::new("routes.yaml"), yaml, env).unwrap();
    let spec = saltbridge::config::choose_source(None, &config);
    assert_eq!(spec.to_string(), "saltapi:https://salt:8000");
    let saltbridge::source::SourceSpec::SaltApi { settings, .. } = &spec else {
        panic!("{spec:?}")
    };
    assert_eq!(
        settings.token.as_ref().map(|t| t.expose()),
        Some("tok-very-secret")
    );
    assert_eq!(settings.ca_file.as_deref(), Some(Path::new("/etc/ca.pem")));
    assert!(!format!("{spec:?}").contains("tok-very-secret"));
    // --source on the command line gets the file's settings too.
    let cli: saltbridge::source::SourceSpec = "saltapi:http://other:8000".parse().unwrap();
    let spec = saltbridge::config::choose_source(Some(cli), &config);
    let saltbridge::source::SourceSpec::SaltApi { url, settings } = &spec else {
        panic!("{spec:?}")
    };
    assert_eq!(
        (url.as_str(), settings.token.is_some()),
        ("http://other:8000", true)
    );
}

/// Found by the `routes` fuzz target: a `${VAR}` in a key put its value in
/// the error's field path, which was not redacted.
#[test]
fn a_substituted_key_is_not_shown_in_the_error_field() {
    let env = |_: &str| Some("zq7-secret-f3a".to_owned());
    let text = "${vgul}e - oolglue} - {U: 1\n";
    let err = load_str(Path::new("routes.yaml"), text, env)
        .expect_err("an unknown top-level key is an error");
    let shown = err.to_string();
    assert!(!shown.contains("zq7-secret-f3a"), "{shown}");
    assert!(shown.contains("${vgul}"), "{shown}");
}
