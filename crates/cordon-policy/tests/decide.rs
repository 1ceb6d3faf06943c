//! `decide` answers for `policy test` and `explain`: each reason once (issue 11, item 29's twin in
//! `cordon policy test ... syscall = "socket"`).

#[test]
fn a_syscall_with_many_argument_rules_gives_each_reason_once() {
    let cx = cordon_policy::Context::for_workspace(std::env::temp_dir());
    let (_, c) = cordon_policy::load_and_compile("builtin:agent", &cx).expect("agent");
    let d = cordon_policy::decide::syscall(&c, "socket");
    assert!(d.allow, "{}", d.reason);
    let reasons: Vec<&str> = d.reason.trim_start_matches("allowed except when: ").split("; ").collect();
    let mut seen = std::collections::HashSet::new();
    for r in &reasons {
        assert!(seen.insert(*r), "`{r}` repeated in: {}", d.reason);
    }
    assert!(reasons.len() >= 2, "{}", d.reason);
}
