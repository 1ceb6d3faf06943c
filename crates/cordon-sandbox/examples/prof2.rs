fn main() {
    let cx = cordon_policy::Context { home: "/root".into(), workspace: "/var/tmp/bws".into(), tmp: "/tmp".into() };
    for _ in 0..200 { let _ = cordon_policy::load_and_compile("builtin:agent", &cx).unwrap(); }
}
