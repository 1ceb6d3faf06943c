//! `cordon-server`: what `cordon server` runs (it execs this binary, installed next to it). Its own
//! binary so that the server's async runtime and HTTP stack are not loaded by every `cordon run`.

use clap::Parser;
use cordon_server::cli::ServerArgs;

#[derive(Parser)]
#[command(name = "cordon server", version)]
struct Cli {
    #[command(flatten)]
    args: ServerArgs,
}

fn main() {
    match cordon_server::serve::run(Cli::parse().args) {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("cordon: error: {e}");
            std::process::exit(if matches!(e, cordon_server::serve::ServeError::Usage(_)) { 2 } else { 125 });
        }
    }
}
