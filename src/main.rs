use clap::Parser;
use parley::cli::Cli;

// glibc's malloc keeps an arena per thread and holds on to memory freed on
// another thread; with tens of thousands of sockets that cost several KiB per
// idle connection (S3 in docs/benchmarks.md measures memory per connection).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    parley::telemetry::init(cli.config.log_format);
    match parley::commands::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
