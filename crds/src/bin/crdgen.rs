//! Writes the DataPlatform CRD to `crds/dataplatform.yaml`; with `--check`, fails when the
//! committed file differs from what the code generates (CI runs it that way).

use std::{path::PathBuf, process::ExitCode};

fn main() -> ExitCode {
    let check = match std::env::args().nth(1).as_deref() {
        None => false,
        Some("--check") => true,
        Some(other) => {
            eprintln!("crdgen: unknown argument {other:?}; usage: crdgen [--check]");
            return ExitCode::from(2);
        }
    };
    // The crate's directory as `cargo run` names it now, so the path works from any directory;
    // the one the binary was compiled in only when run by hand. The compile-time one alone goes
    // stale when a shared target directory serves a checkout at another path (a CI clone).
    let crate_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    let path = crate_dir.join("dataplatform.yaml");
    let yaml = match plinth_crds::crd_yaml() {
        Ok(y) => y,
        Err(e) => {
            eprintln!("crdgen: cannot render the CRD as YAML: {e}");
            return ExitCode::FAILURE;
        }
    };
    if check {
        match std::fs::read_to_string(&path) {
            Ok(committed) if committed == yaml => {
                println!("crdgen: {} is up to date", plinth_crds::CRD_FILE);
                ExitCode::SUCCESS
            }
            Ok(_) => {
                eprintln!(
                    "crdgen: {} is stale: the DataPlatform types changed. Run `cargo run -p plinth-crds --bin crdgen` and commit the result.",
                    plinth_crds::CRD_FILE
                );
                ExitCode::FAILURE
            }
            Err(e) => {
                eprintln!(
                    "crdgen: cannot read {}: {e}. Run `cargo run -p plinth-crds --bin crdgen` and commit the result.",
                    path.display()
                );
                ExitCode::FAILURE
            }
        }
    } else {
        match std::fs::write(&path, yaml) {
            Ok(()) => {
                println!("crdgen: wrote {}", plinth_crds::CRD_FILE);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("crdgen: cannot write {}: {e}", path.display());
                ExitCode::FAILURE
            }
        }
    }
}
