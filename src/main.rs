//! The `gatehouse` binary: all logic lives in the library; see `src/lib.rs` for the map.

fn main() -> std::process::ExitCode {
    gatehouse::cli::main()
}
