//! `cordon server`: runs the `cordon-server` binary installed next to `cordon` (as `cordon gateway`
//! does), with the arguments that follow the verb, parsed here first so that a usage error reads
//! the same as any other. The server's runtime and HTTP stack stay out of `cordon run`.

use anyhow::Result;
use std::os::unix::process::CommandExt;

pub fn exec() -> Result<i32> {
    let exe = std::env::current_exe().map_err(|e| anyhow::anyhow!("cannot find cordon's own binary: {e}"))?;
    let bin = exe.with_file_name("cordon-server");
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).skip_while(|a| a != "server").skip(1).collect();
    let err = std::process::Command::new(&bin).args(&args).exec();
    anyhow::bail!(
        "cannot run {}: {err}\n  hint: cordon-server is installed next to cordon (cargo build puts both in target/)",
        bin.display()
    )
}
