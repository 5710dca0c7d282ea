//! The fast path against the serde path: same `RawEvent` whenever the scanner answers, and the
//! same decode result (value or error, reason, field and detail) for every input.

use super::scan;
use crate::codec::json::{decode_touchpoint, decode_touchpoint_serde, raw_event, WireEvent};
use crate::config::Config;
use crate::sim::{PoisonKind, SimConfig, Simulator};

const GOOD: &str = r#"{"event_id":"e-00000001","occurred_at":"2026-11-22T10:15:03.120Z","customer_id":"c-000042",
 "channel":"shipping","touchpoint":"delivery","type":"delivery_failed","outcome":"failure",
 "reference":"order-778","cause":"internal","amount":129.9,"currency":"EUR",
 "expected_by":"2026-11-24T18:00:00Z",
 "customer":{"since":"2019-03-01","segment":"smb","annual_value":2400.0},
 "score":null,"attributes":{"carrier":"dhl"},"future_field":[1,2,3]}"#;

/// A short valid event to build cases from: `{HEAD<rest>}`.
const HEAD: &str = r#""event_id":"e-1","occurred_at":"2026-11-22T10:15:03Z","customer_id":"c-1","channel":"billing","touchpoint":"payment","type":"payment_declined","outcome":"failure""#;

struct Checker {
    config: Config,
    fast: usize,
    fallback: usize,
}

impl Checker {
    fn new() -> Checker {
        Checker {
            config: Config::defaults(),
            fast: 0,
            fallback: 0,
        }
    }

    /// Asserts that both paths agree on `bytes`; returns whether the scanner answered.
    fn check(&mut self, bytes: &[u8]) -> bool {
        let channels = crate::codec::Decoder::new(&self.config).channels().to_vec();
        let limits = &self.config.limits;
        // Debug output shows -0.0 apart from 0.0, which `==` on f64 does not.
        let fast = format!("{:?}", decode_touchpoint(bytes, limits, &channels));
        let slow = format!("{:?}", decode_touchpoint_serde(bytes, limits, &channels));
        let shown = String::from_utf8_lossy(bytes);
        assert_eq!(fast, slow, "decode results differ on {shown}");
        let Some(raw) = std::str::from_utf8(bytes).ok().and_then(scan) else {
            self.fallback += 1;
            return false;
        };
        let text = std::str::from_utf8(bytes).unwrap_or_default();
        let wire: WireEvent<'_> = serde_json::from_str(text)
            .unwrap_or_else(|e| panic!("scanner accepted what serde rejects ({e}): {shown}"));
        assert_eq!(
            format!("{raw:?}"),
            format!("{:?}", raw_event(&wire)),
            "raw events differ on {shown}"
        );
        self.fast += 1;
        true
    }
}

fn event(rest: &str) -> String {
    format!("{{{HEAD}{rest}}}")
}

fn sim_lines(customers: usize, poison_every: usize) -> Vec<(Vec<u8>, Option<PoisonKind>)> {
    Simulator::new(SimConfig {
        customers,
        poison_every,
        ..SimConfig::default()
    })
    .iter()
    .map(|r| (r.payload, r.poison))
    .collect()
}

#[test]
fn simulator_events_take_the_fast_path_and_poison_decodes_the_same() {
    let mut c = Checker::new();
    let lines = sim_lines(300, 40);
    assert!(lines.len() > 2_000, "{} lines", lines.len());
    let mut poison = std::collections::HashSet::new();
    for (payload, kind) in &lines {
        let fast = c.check(payload);
        match kind {
            None => assert!(fast, "{}", String::from_utf8_lossy(payload)),
            Some(k) => {
                poison.insert(*k);
            }
        }
    }
    // Every poison kind went through the comparison (oversize ones included: they fail the
    // size check in `Decoder`, but the codec functions alone still decode them).
    for k in PoisonKind::ALL {
        c.check(&crate::sim::poison_payload(k, 7));
    }
    assert!(poison.len() >= 5, "{poison:?}");
}

#[test]
fn members_in_any_order_and_pretty_printed_take_the_fast_path() {
    let mut c = Checker::new();
    for (payload, _) in sim_lines(20, 0) {
        let value: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        // serde_json's map is sorted: `amount, attributes, cause, channel, …`.
        let sorted = serde_json::to_string(&value).unwrap();
        assert!(c.check(sorted.as_bytes()), "{sorted}");
        let pretty = serde_json::to_string_pretty(&value).unwrap();
        assert!(c.check(pretty.as_bytes()), "{pretty}");
    }
}

#[test]
fn the_design_example_takes_the_fast_path() {
    let mut c = Checker::new();
    assert!(c.check(GOOD.as_bytes()));
    assert!(c.check(event("").as_bytes()));
    assert!(c.check(b"{}"), "decodes to a validation error, fast");
}

#[test]
fn tricky_inputs_agree() {
    let mut c = Checker::new();
    let fast = [
        // Whitespace everywhere serde allows it.
        event(",\n\t\"amount\" :\r 1.5 , \"score\":\t3 ").replace("\":\"", "\" : \""),
        format!(" \r\n\t{}\n\n", event("")),
        // Unicode, unescaped.
        event(r#","reference":"ordér-✓ 𝄞","attributes":{"nöte":"😀"}"#),
        // Unknown fields of every shape, including escaped quotes and brackets in strings.
        event(r#","x":{"a":[1,{"b":[[],{}]},"s\"]}"],"c":null,"d":true,"e":false},"y":[]"#),
        event(r#","x":"a\"b}\\","y":"\u00e9\n\/","z":{"k\"ey":-0.5e-7}"#),
        event(r#","x":{},"x":[],"x":1,"y":1e999,"z":-0.1E-0999"#),
        // Numbers in every form the scanner takes.
        event(r#","amount":1e2,"score":-0.0"#),
        event(r#","amount":1E+2,"score":-0"#),
        event(r#","amount":0.1,"score":1.5e-3"#),
        event(r#","amount":4.35,"score":0.3000000000000004"#),
        event(r#","amount":9007199254740992,"score":-12"#),
        event(r#","amount":123456.789e-3,"score":0e5"#),
        // Nulls and empties.
        event(
            r#","reference":null,"cause":null,"amount":null,"currency":null,"expected_by":null,"customer":null,"score":null,"attributes":null"#,
        ),
        event(r#","customer":{},"attributes":{}"#),
        event(r#","customer":{"since":null,"segment":null,"annual_value":null}"#),
        event(r#","customer":{"x":{"since":1},"segment":"smb","y":[{"z":null}]}"#),
        // Repeated attribute keys are kept, as serde's visitor keeps them.
        event(r#","attributes":{"a":"1","a":"2","b":""}"#),
        // Validation errors, found after a fast scan.
        event(r#","currency":"euro""#),
        event(r#","amount":-1"#),
        event(r#","expected_by":"tomorrow""#),
        event(r#","reference":"""#),
        event(r#","customer":{"since":"2019-02-30"}"#),
    ];
    for s in &fast {
        assert!(c.check(s.as_bytes()), "should take the fast path: {s}");
    }
    let fallback = [
        // Escapes in values the scanner would keep, and in keys.
        event(r#","reference":"order\u002d778""#),
        event(r#","reference":"a\"b""#),
        event(r#","attributes":{"k":"v\n"}"#),
        event(r#","attributes":{"k\u0031":"v"}"#),
        GOOD.replace("\"event_id\"", "\"event\\u005fid\""),
        // Control characters inside strings.
        event(",\"reference\":\"a\tb\""),
        event(",\"x\":\"a\u{1}b\""),
        // Bad escapes in skipped strings.
        event(r#","x":"\q""#),
        event(r#","x":"\u12g4""#),
        // Numbers outside the exact range, or not numbers.
        event(r#","amount":12345678901234567890"#),
        event(r#","amount":9007199254740993"#),
        event(r#","amount":1e400"#),
        event(r#","amount":1e23"#),
        event(r#","amount":0.1234567890123456789"#),
        event(r#","amount":01"#),
        event(r#","amount":1."#),
        event(r#","amount":.5"#),
        event(r#","amount":-"#),
        event(r#","amount":1e"#),
        event(r#","amount":+1"#),
        event(r#","amount":NaN"#),
        event(r#","x":01"#),
        event(r#","score":1e999"#),
        event(r#","score":0.30000000000000004"#),
        // Wrong types.
        event(r#","amount":"lots""#),
        event(r#","reference":5"#),
        event(r#","score":true"#),
        event(r#","customer":["2019-03-01","smb",1.0]"#),
        event(r#","customer":"vip""#),
        event(r#","attributes":["a"]"#),
        event(r#","attributes":{"a":1}"#),
        event(r#","attributes":{"a":null}"#),
        event(r#","reference":nul"#),
        event(r#","reference":nullx"#),
        // Duplicate fields.
        event(r#","event_id":"e-2""#),
        event(r#","customer":{"segment":"smb","segment":"vip"}"#),
        event(r#","attributes":{},"attributes":null"#),
        // Malformed objects.
        event(","),
        format!("{{,{HEAD}}}"),
        event(r#","x":[1,]"#),
        event(r#","x":{"a":1,}"#),
        event(r#","x":{"a"}"#),
        event(r#","x":{a:1}"#),
        event(r#","x":[1 2]"#),
        event(r#","x":tru"#),
        format!("{}x", event("")),
        format!("{}{{}}", event("")),
        format!("\u{a0}{}", event("")),
        format!("{}{}", "[".repeat(200), "]".repeat(200)),
        event(&format!(r#","x":{}{}"#, "[".repeat(100), "]".repeat(100))),
        "[1,2,3]".into(),
        "\"event\"".into(),
        "".into(),
        "  ".into(),
        "{".into(),
        "{not json".into(),
    ];
    for s in &fallback {
        assert!(!c.check(s.as_bytes()), "should fall back: {s}");
    }
    // Every prefix of a full event: truncated input.
    for end in 0..GOOD.len() {
        if GOOD.is_char_boundary(end) {
            c.check(&GOOD.as_bytes()[..end]);
        }
    }
    // Not UTF-8.
    c.check(b"{\"event_id\":\"\xff\"}");
}

/// splitmix64: a seeded generator, so a failure names a case that can be re-run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bytes that change the JSON structure or a value's type when put somewhere.
const INTERESTING: &[u8] = b"\"\\{}[],: \t\n0-.eE+nul9a\x01\xff";

fn mutate(line: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut m = line.to_vec();
    for _ in 0..1 + rng.below(3) {
        let at = rng.below(m.len() + 1);
        match rng.below(7) {
            0 => m.truncate(at),
            1 if at < m.len() => m[at] = INTERESTING[rng.below(INTERESTING.len())],
            2 if at < m.len() => m[at] = rng.next() as u8,
            3 => m.insert(at, b" \t\r\n"[rng.below(4)]),
            4 if at < m.len() => {
                m.remove(at);
            }
            5 => m.insert(at, INTERESTING[rng.below(INTERESTING.len())]),
            _ => {
                // Repeat a slice: duplicate keys, members or brackets.
                let end = (at + 1 + rng.below(40)).min(m.len());
                let piece = m[at..end].to_vec();
                m.splice(at..at, piece);
            }
        }
    }
    m
}

#[test]
fn random_mutations_of_valid_lines_agree() {
    let mut c = Checker::new();
    let mut lines: Vec<Vec<u8>> = sim_lines(40, 0).into_iter().map(|l| l.0).collect();
    lines.push(GOOD.as_bytes().to_vec());
    let mut rng = Rng(0x5eed_0001);
    for _ in 0..50_000 {
        let line = &lines[rng.below(lines.len())];
        c.check(&mutate(line, &mut rng));
    }
    // Both paths were exercised, or the comparison proves little.
    assert!(
        c.fast > 2_000 && c.fallback > 2_000,
        "{} / {}",
        c.fast,
        c.fallback
    );
}
