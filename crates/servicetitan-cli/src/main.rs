//! The `servicetitan` command. Everything lives in the library, which the Python and Node
//! packages call too, so the three commands behave alike.

fn main() {
    std::process::exit(servicetitan_cli::run(std::env::args_os()));
}
