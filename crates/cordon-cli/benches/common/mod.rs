//! Shared by the benchmarks: the C project they build, and CPU time of finished children.
#![allow(dead_code)]

use std::path::Path;

/// Writes a small C project (40 translation units and main.c, with a Makefile) into `ws`.
pub fn write_project(ws: &Path) {
    let mut objs: Vec<String> = vec![];
    for i in 0..40 {
        let mut src = String::from("#include <stdio.h>\n#include <string.h>\n");
        for j in 0..60 {
            src.push_str(&format!("static int g{j}(int v) {{ char b[32]; snprintf(b, sizeof b, \"%d\", v + {j}); return (int)strlen(b) + v * {j}; }}\n"));
        }
        src.push_str(&format!("int f{i}(int x) {{ int s = 0;\n"));
        for j in 0..60 {
            src.push_str(&format!("  s += g{j}(x + s);\n"));
        }
        src.push_str("  return s; }\n");
        std::fs::write(ws.join(format!("f{i}.c")), src).expect("src");
        objs.push(format!("f{i}.o"));
    }
    std::fs::write(ws.join("main.c"), "int f0(int);\nint main(void) { return f0(1) == 1 ? 0 : 1; }\n").expect("main");
    std::fs::write(
        ws.join("Makefile"),
        format!("CFLAGS=-O2\nprog: main.o {objs}\n\t$(CC) -o $@ $^\nclean:\n\trm -f *.o prog\n", objs = objs.join(" ")),
    )
    .expect("mk");
}

/// User + system CPU seconds of all waited-for descendants so far.
pub fn children_cpu() -> f64 {
    let u = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN).expect("rusage");
    let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
    t(u.user_time()) + t(u.system_time())
}

pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}
