//! `cargo xtask <command>`: the project's automation, in Rust.

mod agent;
mod api;
mod api_check;
mod bench;
mod demo;
mod escalation_bench;
mod lambda;
mod measure;
mod test;
mod util;

const USAGE: &str = "usage: cargo xtask <command>

commands:
  demo [--once]     run the product locally: emulator, provisioning, a real agent, batches arriving
  test [--skip-api-check] [--skip-lambda] [--skip-demo]
                    every check CI runs: fmt, clippy, static agent, all tests, api-check,
                    arm64 lambda build, demo
  agent             build the agent's static release binary; prints its path last
  lambda            build every function for AWS Lambda (arm64) with cargo-lambda
  bench             measure the ingest hot path and the agent (size, memory, CPU)
  measure [--alerts N]  alert latency (batch to webhook) and AWS requests / cost per device-month
  api-check [--max-examples N] [--seed N]  Schemathesis against the local tenant API (no 5xx,
                    responses as documented), as msp_admin and as platform_operator
  openapi           write functions/api/openapi.json from the API's route table
  token --role R [--tenant T] [--client C]  mint a token of the local issuer (.vigie/jwt-signing-key.pem)";

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        eprintln!("{USAGE}");
        return std::process::ExitCode::from(2);
    };
    let result = match command.as_str() {
        "demo" => demo::main(rest),
        "test" => test::main(rest),
        "agent" => agent::main(rest),
        "lambda" => lambda::main(rest),
        "bench" => bench::main(rest),
        "measure" => measure::main(rest),
        "api-check" => api_check::main(rest),
        "openapi" => api::openapi(rest),
        "token" => api::token(rest),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => {
            eprintln!("unknown command {other:?}\n\n{USAGE}");
            return std::process::ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
