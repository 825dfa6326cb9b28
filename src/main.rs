use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    bursar::cli::run(bursar::cli::Cli::parse()).await
}
