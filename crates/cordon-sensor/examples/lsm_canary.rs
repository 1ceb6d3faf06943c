//! `lsm_canary FILE`: attach the BPF-LSM probe, open FILE (named cordon-lsm-canary), detach, open
//! again; prints the result as JSON and exits 0 only if the open was refused while attached and
//! allowed after. Used by scripts/kernel-matrix inside guests booted with lsm=...,bpf.
fn main() {
    let Some(p) = std::env::args().nth(1) else {
        eprintln!("usage: lsm_canary PATH/cordon-lsm-canary");
        std::process::exit(2);
    };
    match cordon_sensor::lsm::canary(std::path::Path::new(&p)) {
        Ok(c) => {
            println!("{}", serde_json::to_string(&c).unwrap_or_default());
            std::process::exit(if c.denied_while_attached && c.allowed_after && c.program_denials >= 1 {
                0
            } else {
                1
            });
        }
        Err(e) => {
            println!("{}", serde_json::json!({"error": e}));
            std::process::exit(1);
        }
    }
}
