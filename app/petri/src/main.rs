//! The `petri` binary.

use clap::Parser;

fn main() -> std::process::ExitCode {
    petri_api::mem::tune_allocator();
    // Panics inside nodes are caught by the engine and reported as that node's failure with
    // their message; the default hook would also dump them on stderr as a Rust panic, which
    // users should never see. PETRI_DEBUG=1 restores it for developers.
    if std::env::var_os("PETRI_DEBUG").is_none() {
        std::panic::set_hook(Box::new(|_| {}));
    }
    let cli = petri::cli::Cli::parse();
    let code = match std::panic::catch_unwind(|| petri::cli::main_with(cli)) {
        Ok(code) => code,
        Err(p) => {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown".into());
            eprintln!("internal error: {msg} (please report this; PETRI_DEBUG=1 shows where)");
            101
        }
    };
    std::process::ExitCode::from(code)
}
