//! The engine's semantics, one at a time, with rules written for the test (the built-in set's tests
//! are in src/engine.rs): each operator at its boundaries, a rate's window and its reset, a
//! sequence's `within`, and how a reason is filled. Each kills mutants (changed operators,
//! conditions, returned defaults) the earlier tests let live (docs/TESTING.md, "Mutation testing").

use cordon_rules::{Action, Engine, Subject};
use serde_json::{json, Value};

fn engine(rules: &str) -> Engine {
    let text = format!("version = 1\n{rules}");
    Engine::new(cordon_rules::load_text("t.toml", &text).expect("rules load"))
}

/// One rule `r` of kind `denial` with the condition `when`.
fn one(when: &str) -> Engine {
    engine(&format!(
        "[[rule]]\nid = \"r\"\nkind = \"denial\"\nwhen = {{ {when} }}\naction = \"alert\"\nreason = \"x\"\n"
    ))
}

fn denial() -> Subject {
    Subject::parse("denial").expect("denial")
}

/// The ids of the rules one event fires.
fn fired(e: &mut Engine, ts: i64, ev: &Value) -> Vec<String> {
    e.feed(denial(), ts, ev).into_iter().map(|a| a.rule).collect()
}

fn fires(when: &str, ev: Value) -> bool {
    !fired(&mut one(when), 1, &ev).is_empty()
}

#[test]
fn each_operator_holds_exactly_where_it_should() {
    // eq / in: the value, or its text (a number written as a string), any of a list.
    assert!(fires(r#""what.eq" = "mount()""#, json!({"what": "mount()"})));
    assert!(!fires(r#""what.eq" = "mount()""#, json!({"what": "umount()"})));
    assert!(fires(r#""pid.eq" = "42""#, json!({"pid": 42})), "a number matches its text");
    assert!(fires(r#""what.in" = ["a", "b"]"#, json!({"what": "b"})));
    assert!(!fires(r#""what.in" = ["a", "b"]"#, json!({"what": "c"})));
    assert!(!fires(r#""what.eq" = "mount()""#, json!({"comm": "mount()"})), "an absent field matches nothing");
    // ne: none of the values, and the field must be there.
    assert!(fires(r#""what.ne" = ["a", "b"]"#, json!({"what": "c"})));
    assert!(!fires(r#""what.ne" = ["a", "b"]"#, json!({"what": "a"})));
    assert!(!fires(r#""pid.ne" = "42""#, json!({"pid": 42})), "nor its text");
    assert!(!fires(r#""what.ne" = "a""#, json!({"comm": "c"})), "an absent field is not `ne`");
    // prefix / suffix / contains, on text.
    assert!(fires(r#""what.prefix" = "mount""#, json!({"what": "mount(x)"})));
    assert!(!fires(r#""what.prefix" = "mount""#, json!({"what": "umount(x)"})));
    assert!(fires(r#""what.suffix" = ".key""#, json!({"what": "/a/id.key"})));
    assert!(!fires(r#""what.suffix" = ".key""#, json!({"what": "/a/id.key.pub"})));
    assert!(fires(r#""what.contains" = "TIOCSTI""#, json!({"what": "ioctl(TIOCSTI)"})));
    assert!(!fires(r#""what.contains" = "TIOCSTI""#, json!({"what": "ioctl(TCGETS)"})));
    assert!(fires(r#""pid.prefix" = "12""#, json!({"pid": 123})), "a number's text");
    // gt / lt: numbers, strictly.
    assert!(fires(r#""pid.gt" = 100"#, json!({"pid": 101})));
    assert!(!fires(r#""pid.gt" = 100"#, json!({"pid": 100})));
    assert!(!fires(r#""pid.gt" = 100"#, json!({"pid": 99})));
    assert!(fires(r#""pid.lt" = 100"#, json!({"pid": 99})));
    assert!(!fires(r#""pid.lt" = 100"#, json!({"pid": 100})));
    assert!(!fires(r#""pid.lt" = 100"#, json!({"pid": 101})));
    assert!(!fires(r#""pid.gt" = 1"#, json!({"pid": "5"})), "text is not a number");
    // Every condition of a rule must hold.
    assert!(fires(r#""what.prefix" = "a", "pid.gt" = 1"#, json!({"what": "ab", "pid": 2})));
    assert!(!fires(r#""what.prefix" = "a", "pid.gt" = 1"#, json!({"what": "ab", "pid": 1})));
}

#[test]
fn a_nested_field_is_read_by_its_dotted_path() {
    let mut e = engine(
        "[[rule]]\nid = \"r\"\nkind = \"denial\"\nwhen = { \"what.x.y.eq\" = \"z\" }\naction = \"alert\"\nreason = \"{what.x.y}\"\n",
    );
    let a = e.feed(denial(), 1, &json!({"what": {"x": {"y": "z"}}}));
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].reason, "z");
    assert!(e.feed(denial(), 2, &json!({"what": {"x": "z"}})).is_empty());
}

#[test]
fn a_rule_is_only_about_its_own_kind() {
    let mut e = one(r#""what.prefix" = "m""#);
    assert!(e.feed(Subject::parse("egress").expect("egress"), 1, &json!({"what": "m"})).is_empty());
    assert_eq!(fired(&mut e, 2, &json!({"what": "m"})), ["r"]);
}

#[test]
fn a_reason_is_filled_from_the_event() {
    let mut e = engine(concat!(
        "[[rule]]\nid = \"r\"\nkind = \"denial\"\naction = \"kill\"\n",
        "reason = \"{comm} ({pid}) did {what}; {what} again; {layer} {unclosed\"\n",
    ));
    let a = e.feed(denial(), 7, &json!({"comm": "sh", "pid": 12, "what": "mount()"}));
    assert_eq!(a.len(), 1);
    // A string as it is, a number as its text, a field the event lacks as written, and a brace
    // that is never closed as written.
    assert_eq!(a[0].reason, "sh (12) did mount(); mount() again; {layer} {unclosed");
    assert_eq!((a[0].action, a[0].ts_ms), (Action::Kill, 7));
    assert_eq!(a[0].event, json!({"comm": "sh", "pid": 12, "what": "mount()"}));
    let mut e = engine("[[rule]]\nid = \"r\"\nkind = \"denial\"\naction = \"alert\"\nreason = \"plain\"\n");
    assert_eq!(e.feed(denial(), 1, &json!({}))[0].reason, "plain");
}

#[test]
fn a_rate_fires_once_per_count_within_its_window_then_starts_again() {
    let rule = "[[rule]]\nid = \"burst\"\nkind = \"denial\"\nrate = { count = 3, window = \"1s\" }\naction = \"kill\"\nreason = \"x\"\n";
    let mut e = engine(rule);
    let ev = json!({"what": "m"});
    let mut at = |ts: i64| fired(&mut e, ts, &ev).len();
    // Three within the window fire once; the count starts again after firing.
    assert_eq!([at(0), at(100), at(200)], [0, 0, 1]);
    assert_eq!([at(300), at(400), at(500)], [0, 0, 1]);
    // The window is inclusive: an event exactly 1 s after the first still counts with it.
    let mut e = engine(rule);
    let mut at = |ts: i64| fired(&mut e, ts, &ev).len();
    assert_eq!([at(1000), at(1500), at(2000)], [0, 0, 1]);
    // Events older than the window fall out of it.
    let mut e = engine(rule);
    let mut at = |ts: i64| fired(&mut e, ts, &ev).len();
    assert_eq!([at(1000), at(1500), at(2001), at(2400)], [0, 0, 0, 1]);
}

#[test]
fn a_sequence_fires_only_within_its_time_after_the_first_rule() {
    let rules = concat!(
        "[[rule]]\nid = \"first\"\nkind = \"denial\"\nwhen = { \"what.eq\" = \"a\" }\naction = \"alert\"\nreason = \"x\"\n",
        "[[rule]]\nid = \"then\"\nkind = \"denial\"\nwhen = { \"what.eq\" = \"b\" }\nafter = \"first\"\nwithin = \"1s\"\naction = \"alert\"\nreason = \"y\"\n",
    );
    let (a, b) = (json!({"what": "a"}), json!({"what": "b"}));
    // Without the first rule having fired: nothing.
    let mut e = engine(rules);
    assert!(fired(&mut e, 500, &b).is_empty());
    // Within the time (inclusive), and again while the first stays recent.
    assert_eq!(fired(&mut e, 500, &a), ["first"]);
    assert_eq!(fired(&mut e, 1500, &b), ["then"]);
    assert!(fired(&mut e, 1501, &b).is_empty(), "1001 ms after the first");
    // The time runs from the first rule's latest firing.
    assert_eq!(fired(&mut e, 3000, &a), ["first"]);
    assert_eq!(fired(&mut e, 3999, &b), ["then"]);
}
