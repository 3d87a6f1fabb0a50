//! Secrets redaction: values that look like credentials in recorded code and
//! text outputs are replaced by `[REDACTED:<kind>]` before a record reaches
//! the writer, so they never touch the database, its WAL or the full-text
//! index.
//!
//! Only the secret part of a match is replaced (`key = "[REDACTED:…]"`,
//! `postgres://me:[REDACTED:url_password]@db`), so an exported notebook still
//! shows where the secret was. Binary MIME data (base64 `image/png`…) is never
//! touched. On by default; `JUPYTER_LINEAGE_REDACT=off` turns it off.
//!
//! This is pattern matching, not a guarantee: a secret with no recognisable
//! shape (a bare random string, a password read from a file and printed) is
//! stored as it is. See `docs/threat-model.md`.

use std::borrow::Cow;
use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind};
use regex::Regex;
use serde_json::Value;

use crate::store::{ExecutionRecord, MimeData, OutputRecord, WriteOp};

/// The environment variable that turns redaction off (`off`, `0`, `false`,
/// `no`, `disabled`); read with the rest of the configuration.
pub const ENV: &str = crate::config::REDACT_VAR;

/// Whether redaction is on, from `JUPYTER_LINEAGE_REDACT` (default: on),
/// for callers not handed a [`crate::config::Config`].
pub fn enabled_from_env() -> bool {
    crate::config::Config::from_env().redact
}

/// One kind of secret: a regex and which of its groups is the secret (the
/// first group that took part in the match; 0 = the whole match), and a
/// last check of the secret's text where a regex alone cannot say it.
struct Rule {
    kind: &'static str,
    regex: Regex,
    groups: &'static [usize],
    looks_secret: fn(&str) -> bool,
}

fn any(_: &str) -> bool {
    true
}

/// A token, not a word: it has a digit, or is too long to be prose
/// (`Bearer instruments/securities` stays; random base64 almost always has
/// a digit within 16 characters).
fn token_like(s: &str) -> bool {
    s.len() >= 32 || s.bytes().any(|b| b.is_ascii_digit())
}

/// Space between a name and its value, including the ANSI colour codes
/// IPython puts between the tokens of a traceback's source line
/// (`token \x1b[38;5;241m=\x1b[39m \x1b[38;5;124m"…"`).
const SEP: &str = r"(?:\s|\x1b\[[0-9;]*m)*";

static RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    // ASCII word boundaries: a Unicode `\b` would make the regex engine
    // leave its fast DFA on any non-ASCII text.
    let rule = |kind, pattern: &str, groups| Rule {
        kind,
        regex: Regex::new(&pattern.replace(r"\b", r"(?-u:\b)"))
            .expect("redaction patterns are valid"),
        groups,
        looks_secret: any,
    };
    vec![
        // PEM private keys: the body between the armour lines, or to the end
        // of the text when the footer is missing (an output cut at the cap).
        rule(
            "private_key",
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----((?s:.*?))(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|\z)",
            &[1],
        ),
        rule("aws_access_key_id", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b", &[0]),
        rule(
            "aws_secret_access_key",
            &format!(
                r#"(?i)\baws_?secret_?(?:access_?)?key\b["']?{SEP}(?:=|:|=>){SEP}[rbf]?["']?([A-Za-z0-9/+]{{40}})"#
            ),
            &[1],
        ),
        rule(
            "github_token",
            r"\b(?:gh[pousr]_[A-Za-z0-9]{20,255}|github_pat_[A-Za-z0-9_]{22,255})\b",
            &[0],
        ),
        rule("slack_token", r"\bxox[abposr]-[0-9A-Za-z-]{10,}", &[0]),
        rule("google_api_key", r"\bAIza[0-9A-Za-z_\-]{35}", &[0]),
        // OpenAI / Anthropic style. A long alphanumeric run (or a known
        // project prefix) keeps `sk-learn-compatible` and the like out.
        rule(
            "api_key",
            r"\bsk-(?:(?:proj|svcacct|admin|ant)-[A-Za-z0-9_\-]{20,}|[A-Za-z0-9]{20,})",
            &[0],
        ),
        rule(
            "stripe_key",
            r"\b(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{10,}",
            &[0],
        ),
        rule(
            "jwt",
            r"\beyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{10,}",
            &[0],
        ),
        Rule {
            looks_secret: token_like,
            ..rule(
                "bearer_token",
                r"(?i)\bbearer\s+([A-Za-z0-9\-._~+/]{16,}=*)",
                &[1],
            )
        },
        rule(
            "basic_auth",
            r"(?i)\bauthorization\b[\x22']?\s*[:=]\s*[\x22']?basic\s+([A-Za-z0-9+/]{8,}=*)",
            &[1],
        ),
        rule(
            "url_password",
            // No brackets in user or password: a `[REDACTED:…]` marker from
            // another rule must not look like credentials (idempotence, found
            // by the `redact` fuzz target).
            r"\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/?#@\x22'<>\[\]]+:([^\s/?#@\x22'<>\[\]]+)@",
            &[1],
        ),
        // `password = "…"`, `"api_key": '…'`, `TOKEN="…"`: a name ending in
        // one of the words, then a quoted literal of 8 or more characters.
        // `password = input()` or `getpass()` have no literal and stay.
        rule(
            "secret",
            &format!(
                r#"(?i)\b[a-z0-9_]*(?:password|passwd|secret|token|api_?key|apikey|secret_?key|access_?key|private_?key)[0-9]?\b["']?{SEP}(?:=|:|:=|=>|==){SEP}[rbfu]?(?:"([^"\n]{{8,}})"|'([^'\n]{{8,}})')"#
            ),
            &[1, 2],
        ),
    ]
});

/// Cheap pre-filter: literals one of which every secret contains, found in
/// one pass (ASCII case-insensitive); each names the rules it may trigger.
/// Text with none of them (nearly all of it) never reaches a regex.
static TRIGGERS: &[(&str, &[&str])] = &[
    ("PRIVATE KEY", &["private_key"]),
    ("AKIA", &["aws_access_key_id"]),
    ("ASIA", &["aws_access_key_id"]),
    ("secret", &["aws_secret_access_key", "secret"]),
    ("gh", &["github_token"]),
    ("github_pat_", &["github_token"]),
    ("xox", &["slack_token"]),
    ("AIza", &["google_api_key"]),
    ("sk-", &["api_key"]),
    ("k_live_", &["stripe_key"]),
    ("k_test_", &["stripe_key"]),
    ("eyJ", &["jwt"]),
    ("bearer", &["bearer_token"]),
    ("basic", &["basic_auth"]),
    ("://", &["url_password"]),
    ("password", &["secret"]),
    ("passwd", &["secret"]),
    ("token", &["secret"]),
    ("key", &["secret"]),
];

/// The trigger automaton and, per trigger, a bit mask of rules.
static PREFILTER: LazyLock<(AhoCorasick, Vec<u32>)> = LazyLock::new(|| {
    let ac = AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        // A full DFA: a few KB for these literals, and the fastest scan
        // (this runs over every byte of code and text output recorded).
        .kind(Some(AhoCorasickKind::DFA))
        .build(TRIGGERS.iter().map(|(t, _)| t))
        .expect("trigger literals build");
    let masks = TRIGGERS
        .iter()
        .map(|(_, kinds)| {
            kinds.iter().fold(0u32, |m, k| {
                let i = RULES
                    .iter()
                    .position(|r| r.kind == *k)
                    .expect("every trigger names a rule");
                m | (1 << i)
            })
        })
        .collect();
    (ac, masks)
});

/// Which rules may match `text` (a bit per rule); 0 = none can.
fn candidates(text: &str) -> u32 {
    let (ac, masks) = &*PREFILTER;
    let all = (1u32 << RULES.len()) - 1;
    let mut found = 0;
    for m in ac.find_iter(text) {
        found |= masks[m.pattern().as_usize()];
        if found == all {
            break;
        }
    }
    found
}

/// Most passes `redact` makes before it settles (see there). Real text
/// settles in one or two; this only bounds what a crafted input can cost.
const MAX_PASSES: usize = 8;

/// `text` with every secret replaced, or `Borrowed` when there is none.
///
/// Passes repeat until one finds nothing: when two secrets overlap only one
/// is replaced per pass, and a replacement can shorten a quoted literal or
/// join two pieces into a new match. So the result holds no secret any rule
/// would find, and redacting it again changes nothing (the `redact` fuzz
/// target checks this on arbitrary input).
pub fn redact(text: &str) -> Cow<'_, str> {
    let Cow::Owned(mut out) = redact_pass(text) else {
        return Cow::Borrowed(text);
    };
    for _ in 1..MAX_PASSES {
        match redact_pass(&out) {
            Cow::Borrowed(_) => break,
            Cow::Owned(next) => out = next,
        }
    }
    Cow::Owned(out)
}

/// One pass: every non-overlapping secret the rules find, replaced.
fn redact_pass(text: &str) -> Cow<'_, str> {
    let rules = candidates(text);
    if rules == 0 {
        return Cow::Borrowed(text);
    }
    // (start, end, kind) of every secret, from every rule that may match.
    let mut spans: Vec<(usize, usize, &'static str)> = Vec::new();
    for (i, rule) in RULES.iter().enumerate() {
        if rules & (1 << i) == 0 {
            continue;
        }
        for caps in rule.regex.captures_iter(text) {
            let Some(m) = rule.groups.iter().find_map(|&g| caps.get(g)) else {
                continue;
            };
            // Already redacted (a record redacted twice stays the same).
            if m.as_str().starts_with("[REDACTED:") || !(rule.looks_secret)(m.as_str()) {
                continue;
            }
            spans.push((m.start(), m.end(), rule.kind));
        }
    }
    if spans.is_empty() {
        return Cow::Borrowed(text);
    }
    // Overlaps (a JWT inside a bearer header, an AKIA id in `access_key =
    // "…"`): the earliest start wins, then the longest.
    spans.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end, kind) in spans {
        if start < at {
            continue;
        }
        out.push_str(&text[at..start]);
        out.push_str("[REDACTED:");
        out.push_str(kind);
        out.push(']');
        at = end;
    }
    out.push_str(&text[at..]);
    Cow::Owned(out)
}

/// Redacts a string in place; true if something was replaced.
pub fn redact_string(s: &mut String) -> bool {
    match redact(s) {
        Cow::Borrowed(_) => false,
        Cow::Owned(new) => {
            *s = new;
            true
        }
    }
}

/// Redacts every string inside a JSON value (error tracebacks, JSON MIME
/// values); keys are left alone.
pub fn redact_json(v: &mut Value) -> bool {
    match v {
        Value::String(s) => redact_string(s),
        Value::Array(items) => items.iter_mut().fold(false, |c, i| redact_json(i) | c),
        Value::Object(map) => map.values_mut().fold(false, |c, i| redact_json(i) | c),
        _ => false,
    }
}

/// MIME types whose values are text a person reads (and may paste a key
/// into). Everything else, base64 images above all, is left as it is.
pub fn is_text_mime(mime: &str) -> bool {
    let mime = mime.split(';').next().unwrap_or(mime).trim();
    mime.starts_with("text/")
        || mime.ends_with("+json")
        || mime.ends_with("+xml")
        || matches!(
            mime,
            "application/json" | "application/javascript" | "application/x-latex"
        )
}

/// Redacts one MIME value of an output if its type is text.
pub fn redact_mime(d: &mut MimeData) -> bool {
    if !is_text_mime(&d.mime) {
        return false;
    }
    let new = if d.is_json && !d.truncated {
        // A JSON value is stored as its JSON text: redact its strings and
        // write it out again, so the text stays valid JSON.
        let Ok(mut v) = serde_json::from_slice::<Value>(&d.bytes) else {
            return false;
        };
        if !redact_json(&mut v) {
            return false;
        }
        serde_json::to_vec(&v).unwrap_or_default()
    } else {
        let text = String::from_utf8_lossy(&d.bytes);
        match redact(&text) {
            Cow::Borrowed(_) => return false,
            Cow::Owned(new) => new.into_bytes(),
        }
    };
    // `size` is the length before truncation: shift it by what changed.
    d.size = (d.size + new.len()).saturating_sub(d.bytes.len());
    d.bytes = new;
    true
}

/// Redacts the text MIME values and the error of an output.
pub fn redact_output(o: &mut OutputRecord) -> bool {
    let mut changed = false;
    for d in &mut o.data {
        changed |= redact_mime(d);
    }
    if let Some(e) = &mut o.error {
        changed |= redact_json(e);
    }
    changed
}

/// Redacts everything of an execution a person typed or read: code, error
/// name/value/traceback and text outputs.
pub fn redact_execution(e: &mut ExecutionRecord) -> bool {
    let mut changed = false;
    for s in [&mut e.code, &mut e.error_name, &mut e.error_value]
        .into_iter()
        .flatten()
    {
        changed |= redact_string(s);
    }
    if let Some(t) = &mut e.traceback {
        changed |= redact_json(t);
    }
    for o in &mut e.outputs {
        changed |= redact_output(o);
    }
    changed
}

/// Redacts a write before it is handed to the writer thread. Sessions,
/// package lists and git state carry no user text and pass unchanged.
pub fn redact_write(op: &mut WriteOp) -> bool {
    match op {
        WriteOp::Execution(e) => redact_execution(e),
        WriteOp::UpdateDisplay { data, .. } => {
            data.iter_mut().fold(false, |c, d| redact_mime(d) | c)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::OutputType;

    fn r(text: &str) -> String {
        redact(text).into_owned()
    }

    /// Asserts `text` comes back unchanged (and without allocating).
    fn untouched(text: &str) {
        assert!(
            matches!(redact(text), Cow::Borrowed(_)),
            "changed: {text:?} -> {:?}",
            r(text)
        );
    }

    #[test]
    fn aws_keys() {
        assert_eq!(
            r("key_id = 'AKIAIOSFODNN7EXAMPLE'"),
            "key_id = '[REDACTED:aws_access_key_id]'"
        );
        assert_eq!(
            r("ASIAY34FZKBOKMUTVV7A in the log"),
            "[REDACTED:aws_access_key_id] in the log"
        );
        assert_eq!(
            r(r#"aws_secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY""#),
            r#"aws_secret_access_key = "[REDACTED:aws_secret_access_key]""#
        );
        assert_eq!(
            r("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n"),
            "AWS_SECRET_ACCESS_KEY=[REDACTED:aws_secret_access_key]\n"
        );
    }

    #[test]
    fn vendor_tokens() {
        for (secret, kind) in [
            ("ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789", "github_token"),
            ("gho_16C7e42F292c6912E7710c838347Ae178B4a", "github_token"),
            (
                "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTU",
                "github_token",
            ),
            ("xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", "slack_token"),
            ("xoxp-1234567890-abcdefghij", "slack_token"),
            ("AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q", "google_api_key"),
            ("sk-abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKL", "api_key"),
            ("sk-proj-Ab3_dEf-GhIjKlMnOpQrStUvWxYz0123456789", "api_key"),
            ("sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz", "api_key"),
            ("sk_live_4eC39HqLyjWDarjtT1zdp7dc", "stripe_key"),
            ("rk_live_51HaBcDeFgHiJkLmNoPq", "stripe_key"),
            (
                "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
                "jwt",
            ),
        ] {
            assert_eq!(
                r(&format!("client = Client({secret:?})")),
                format!("client = Client(\"[REDACTED:{kind}]\")"),
                "{secret}"
            );
            assert_eq!(r(secret), format!("[REDACTED:{kind}]"));
        }
    }

    #[test]
    fn bearer_and_basic_headers() {
        assert_eq!(
            r(r#"headers = {"Authorization": "Bearer abcdef0123456789abcdef.xyz"}"#),
            r#"headers = {"Authorization": "Bearer [REDACTED:bearer_token]"}"#
        );
        assert_eq!(
            r("curl -H 'authorization: bearer 0123456789abcdefABCDEF'"),
            "curl -H 'authorization: bearer [REDACTED:bearer_token]'"
        );
        assert_eq!(
            r("Authorization: Basic dXNlcjpodW50ZXIy"),
            "Authorization: Basic [REDACTED:basic_auth]"
        );
        // A JWT as a bearer token is one secret, not two.
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlc2lnbmF0dXJl";
        assert_eq!(r(&format!("Bearer {jwt}")), "Bearer [REDACTED:jwt]");
    }

    #[test]
    fn private_key_blocks() {
        let pem = "key = \"\"\"-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA0Z3VS5JJcds3xfn\n/ygWyF8PbnGy\n-----END RSA PRIVATE KEY-----\"\"\"\nprint(key)";
        assert_eq!(
            r(pem),
            "key = \"\"\"-----BEGIN RSA PRIVATE KEY-----[REDACTED:private_key]-----END RSA PRIVATE KEY-----\"\"\"\nprint(key)"
        );
        assert_eq!(
            r("-----BEGIN OPENSSH PRIVATE KEY-----\\nb3BlbnNzaC1rZXktdjE=\\n-----END OPENSSH PRIVATE KEY-----\\n"),
            "-----BEGIN OPENSSH PRIVATE KEY-----[REDACTED:private_key]-----END OPENSSH PRIVATE KEY-----\\n"
        );
        // Cut off by the output cap: everything after BEGIN goes.
        assert_eq!(
            r("out: -----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC"),
            "out: -----BEGIN PRIVATE KEY-----[REDACTED:private_key]"
        );
        // Public keys and certificates are not secrets.
        untouched("-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A\n-----END PUBLIC KEY-----");
        untouched("-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIEAgAAuTANBgkq\n-----END CERTIFICATE-----");
    }

    #[test]
    fn assignments_of_literals() {
        assert_eq!(
            r(r#"db_password = "correct horse battery""#),
            r#"db_password = "[REDACTED:secret]""#
        );
        assert_eq!(
            r("API_KEY='0123456789abcdef'"),
            "API_KEY='[REDACTED:secret]'"
        );
        assert_eq!(
            r(r#"conf = {"client_secret": "s3cr3t-v4lu3", "n": 1}"#),
            r#"conf = {"client_secret": "[REDACTED:secret]", "n": 1}"#
        );
        assert_eq!(
            r(r#"connect(user="me", password="hunter2hunter2")"#),
            r#"connect(user="me", password="[REDACTED:secret]")"#
        );
        assert_eq!(
            r("github_token: 'abcdefgh12345678'"),
            "github_token: '[REDACTED:secret]'"
        );
        // IPython colours a traceback's source line.
        assert_eq!(
            r("\x1b[0;32m----> 1\x1b[0m token \x1b[38;5;241m=\x1b[39m \x1b[38;5;124m\"abcdefgh12345678\"\x1b[39m"),
            "\x1b[0;32m----> 1\x1b[0m token \x1b[38;5;241m=\x1b[39m \x1b[38;5;124m\"[REDACTED:secret]\"\x1b[39m"
        );
    }

    #[test]
    fn redacting_twice_changes_nothing_after_fuzz_crash() {
        // Regression: the fuzzer's crash input, reduced.
        for text in [
            "engine = create_engine('postgresql://ghp_aBcDe012Fg3hIjKlMnOpQrStUvWxYz0123456:pa55w0rd@db')",
            "x = 'esql://[REDACTED:github_token]:[REDACTED:url_password]@dbhost'",
        ] {
            let once = r(text);
            assert_eq!(r(&once), once, "{text}");
        }
    }

    #[test]
    fn redaction_repeats_until_nothing_is_left() {
        // A fuzzer input where one pass leaves text that a second pass
        // redacts further; the result of `redact` must be settled.
        let raw = include_bytes!("../../fuzz/seeds/redact/regression_overlap_passes");
        let text = String::from_utf8_lossy(raw);
        let one = redact_pass(&text).into_owned();
        assert!(
            matches!(redact_pass(&one), Cow::Owned(_)),
            "this input needs a second pass"
        );
        let settled = r(&text);
        assert!(matches!(redact_pass(&settled), Cow::Borrowed(_)));
        assert_eq!(r(&settled), settled);
    }

    #[test]
    fn urls_with_credentials() {
        assert_eq!(
            r("engine = create_engine('postgresql://alice:pa55w0rd@db.internal:5432/prod')"),
            "engine = create_engine('postgresql://alice:[REDACTED:url_password]@db.internal:5432/prod')"
        );
        assert_eq!(
            r("https://user:tok@github.com/org/repo.git"),
            "https://user:[REDACTED:url_password]@github.com/org/repo.git"
        );
        untouched("https://example.com:8080/path?q=a:b@c");
        untouched("git@github.com:org/repo.git");
        untouched("mailto:someone@example.com");
    }

    #[test]
    fn ordinary_text_is_left_alone() {
        for text in [
            "import numpy as np\nx = np.arange(10)\nprint(x.sum())",
            "password = input('Password: ')",
            "password = getpass.getpass()",
            "token = os.environ['GITHUB_TOKEN']",
            "api_key = os.getenv(\"OPENAI_API_KEY\")",
            "password = 'short'",
            "my password is hunter2",
            "The password: hunter22 (in prose, no quotes)",
            "token_type = 'bearer_token_type'",
            "max_tokens = 'unlimited!!'",
            "tokenizer = AutoTokenizer.from_pretrained('bert-base-uncased')",
            "from sklearn.pipeline import make_pipeline  # sk-learn-compatible-estimator-here",
            "task-abcdefghijklmnopqrstuvwxyz0123456789",
            "the bearer of bad news",
            "Bearer instruments/securities are transferable",
            "Basic statistics: mean 3.2",
            "sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "commit 4b825dc642cb6eb9a060e54bf8d69288fbee4904",
            "run id 123e4567-e89b-12d3-a456-426614174000",
            "https://docs.python.org/3/library/secrets.html",
            "Asia/Tokyo, fantasia, AKIA too short",
            "keys = dict(a=1)",
            "secret_santa = True",
        ] {
            untouched(text);
        }
    }

    #[test]
    fn redacting_twice_changes_nothing() {
        let once = r(r#"password = "hunter2hunter2"; k = "AKIAIOSFODNN7EXAMPLE""#);
        assert_eq!(redact(&once), once);
    }

    #[test]
    fn text_mimes_only() {
        let mut png = MimeData::from_text(
            "image/png",
            b"iVBORw0KGgoAAAANSUhEUgAKIAIOSFODNN7EXAMPLE+ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789"
                .to_vec(),
            false,
            1 << 20,
        );
        let before = png.bytes.clone();
        assert!(!redact_mime(&mut png));
        assert_eq!(png.bytes, before);

        let mut html = MimeData::from_text(
            "text/html",
            b"<td>AKIAIOSFODNN7EXAMPLE</td>".to_vec(),
            false,
            1 << 20,
        );
        assert!(redact_mime(&mut html));
        assert_eq!(html.bytes, b"<td>[REDACTED:aws_access_key_id]</td>");
        assert_eq!(html.size, html.bytes.len());

        // JSON values stay valid JSON.
        let mut json = MimeData::from_value(
            "application/json",
            &serde_json::json!({"password": "hunter2hunter2", "auth": "Bearer abcdefghijklmnop0123"}),
            1 << 20,
        );
        assert!(redact_mime(&mut json));
        let v: Value = serde_json::from_slice(&json.bytes).unwrap();
        assert_eq!(v["auth"], "Bearer [REDACTED:bearer_token]");
    }

    #[test]
    fn whole_execution() {
        let mut e = ExecutionRecord {
            session_uuid: "s".into(),
            msg_id: "m".into(),
            cell_id: None,
            notebook_path: None,
            execution_count: Some(1),
            code: Some("print('AKIAIOSFODNN7EXAMPLE')\ntoken = \"abcdefgh12345678\"".into()),
            silent: false,
            store_history: true,
            started_ms: 0,
            ended_ms: None,
            status: crate::store::Status::Error,
            error_name: Some("ValueError".into()),
            error_value: Some("bad key AKIAIOSFODNN7EXAMPLE".into()),
            traceback: Some(serde_json::json!(["line AKIAIOSFODNN7EXAMPLE"])),
            wall_ms: None,
            resources: Default::default(),
            exit_code: None,
            exit_signal: None,
            outputs: vec![OutputRecord {
                output_type: OutputType::Error,
                name: None,
                display_id: None,
                execution_count: None,
                metadata: None,
                data: vec![],
                error: Some(serde_json::json!({
                    "ename": "ValueError",
                    "evalue": "bad key AKIAIOSFODNN7EXAMPLE",
                    "traceback": ["AKIAIOSFODNN7EXAMPLE"],
                })),
            }],
            truncated: false,
        };
        let mut op = WriteOp::Execution(Box::new(e.clone()));
        assert!(redact_write(&mut op));
        let WriteOp::Execution(r) = op else {
            unreachable!()
        };
        let dump = format!("{r:?}");
        assert!(!dump.contains("AKIAIOSFODNN7EXAMPLE"), "{dump}");
        assert!(!dump.contains("abcdefgh12345678"), "{dump}");
        assert_eq!(
            r.code.as_deref(),
            Some("print('[REDACTED:aws_access_key_id]')\ntoken = \"[REDACTED:secret]\"")
        );
        // Nothing to redact: nothing changes.
        e.code = Some("print(1)".into());
        e.error_value = None;
        e.traceback = None;
        e.outputs.clear();
        assert!(!redact_execution(&mut e));
    }

    #[test]
    fn prefilter_names_real_rules_and_fits_the_mask() {
        assert!(RULES.len() < 32);
        assert_eq!(candidates("plain text with nothing in it"), 0);
        assert_ne!(candidates("AKIA"), 0);
    }
}
