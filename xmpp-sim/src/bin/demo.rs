//! The README's first command: `cargo run -p xmpp-sim --bin demo` (`--help` for the
//! real-server mode). The scenario and its checks live in [`xmpp_sim::demo`].

use std::process::ExitCode;

use xmpp_sim::demo::{self, Mode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let ok = match demo::parse_args(&args) {
        Ok(Mode::Help) => {
            println!("{}", demo::USAGE);
            return ExitCode::SUCCESS;
        }
        Ok(Mode::InMemory) => demo::run_in_memory(),
        Ok(Mode::Server(a)) => demo::run_on_server(&a),
        Err(e) => {
            eprintln!("demo: {e}");
            return ExitCode::from(2);
        }
    };
    if ok {
        println!("\nAll checks passed.");
        ExitCode::SUCCESS
    } else {
        println!("\nSome checks FAILED.");
        ExitCode::FAILURE
    }
}
