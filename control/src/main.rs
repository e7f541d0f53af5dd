//! The `switchyard` binary. Parses the command line and hands off to `control::cli`, or runs as a CNI
//! plugin (`control::cni`).

use std::process::ExitCode;

fn main() -> ExitCode {
    // Installed in a CNI plugin directory, the binary is run without arguments and the command
    // in CNI_COMMAND (`switchyard cni` does the same explicitly).
    if control::cni::invoked_as_plugin() {
        return control::cni::main();
    }
    control::cli::main()
}
