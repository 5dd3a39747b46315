//! `nsl`: train, evaluate and fold neural similarity networks from the command line
//! (`nsl --help`; the program is [`nsl_models::cli`]).

fn main() -> std::process::ExitCode {
    nsl_models::cli::main()
}
