//! `cordon gateway`: runs the `cordon-gateway` binary installed next to `cordon`, with the arguments
//! that follow the verb (parsed here first, so that a usage error reads the same as any other).

use anyhow::Result;
use std::os::unix::process::CommandExt;

pub fn exec() -> Result<i32> {
    let exe = std::env::current_exe().map_err(|e| anyhow::anyhow!("cannot find cordon's own binary: {e}"))?;
    let gw = exe.with_file_name("cordon-gateway");
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).skip_while(|a| a != "gateway").skip(1).collect();
    let err = std::process::Command::new(&gw).args(&args).exec();
    anyhow::bail!(
        "cannot run {}: {err}\n  hint: cordon-gateway is installed next to cordon (cargo build puts both in target/)",
        gw.display()
    )
}
