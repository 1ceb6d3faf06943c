fn main() {
    let cx = cordon_policy::Context { home: "/root".into(), workspace: "/var/tmp/bws".into(), tmp: "/tmp".into() };
    let t = std::time::Instant::now();
    let (_, c) = cordon_policy::load_and_compile("builtin:agent", &cx).unwrap();
    eprintln!("first compile {:?}", t.elapsed());
    let t = std::time::Instant::now();
    for _ in 0..100 { let _ = cordon_policy::load_and_compile("builtin:agent", &cx).unwrap(); }
    eprintln!("steady compile {:?}", t.elapsed() / 100);
    let t = std::time::Instant::now();
    let caps = cordon_sandbox::KernelCaps::detect();
    eprintln!("caps {:?}", t.elapsed());
    let inv = cordon_sandbox::Invocation { session_id: "x".into(), argv: vec!["/bin/true".into()], cwd: "/var/tmp/bws".into(), env: std::env::vars_os().collect() };
    let t = std::time::Instant::now();
    let p = cordon_sandbox::plan(&c, &caps, &inv);
    eprintln!("first plan {:?}", t.elapsed());
    let t = std::time::Instant::now();
    let mut g = vec![];
    let _ = cordon_sandbox::plan::seccomp::plan(&c, &caps, &mut g);
    eprintln!("seccomp plan {:?}", t.elapsed());
    let t = std::time::Instant::now();
    let _ = cordon_sandbox::plan::ns::plan(&c, &caps, &mut g);
    eprintln!("ns plan {:?}", t.elapsed());
    let t = std::time::Instant::now();
    let _ = cordon_sandbox::apply::seccomp::build(&p.seccomp).unwrap();
    eprintln!("bpf build {:?}", t.elapsed());
}
