//! Builds `xdp-prog` for the BPF target (nightly + rust-src + bpf-linker,
//! installed by scripts/setup.sh) and leaves the object in OUT_DIR, where
//! src/lib.rs embeds it.
//!
//! aya-build relays every line of the nested cargo build as a
//! `cargo:warning`, so each build printed ~35 "warning: … Compiling …"
//! lines. This script runs aya-build in a child (itself, re-executed with
//! `IH_NESTED_EBPF_BUILD=1`) and passes on what cargo needs (rerun-if
//! lines) but the relayed lines only when the nested build fails, or one
//! is a real compiler warning of the XDP program.
use std::process::Command;

const NESTED: &str = "IH_NESTED_EBPF_BUILD";

fn build() -> anyhow::Result<()> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../xdp-prog");
    println!("cargo:rerun-if-changed={root}/src");
    println!("cargo:rerun-if-changed={root}/Cargo.toml");
    // the crates the program is built from
    for dep in ["ironhoard-common", "ironhoard-classify"] {
        println!("cargo:rerun-if-changed={}/../{dep}/src", env!("CARGO_MANIFEST_DIR"));
        println!("cargo:rerun-if-changed={}/../{dep}/Cargo.toml", env!("CARGO_MANIFEST_DIR"));
    }
    aya_build::build_ebpf(
        [aya_build::Package { name: "xdp-prog", root_dir: root, ..Default::default() }],
        aya_build::Toolchain::default(),
    )
}

fn main() -> anyhow::Result<()> {
    if std::env::var_os(NESTED).is_some() {
        return build();
    }
    let me = std::env::current_exe()?;
    let out = Command::new(&me).env(NESTED, "1").output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let (relayed, directives): (Vec<&str>, Vec<&str>) = stdout.lines().partition(|l| l.starts_with("cargo:warning="));
    for d in directives {
        println!("{d}");
    }
    // a compiler diagnostic of the XDP program itself stays visible
    let diagnostic = relayed.iter().any(|l| l.starts_with("cargo:warning=warning:") || l.starts_with("cargo:warning=error"));
    if !out.status.success() || diagnostic {
        for l in &relayed {
            println!("{l}");
        }
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
    }
    if !out.status.success() {
        anyhow::bail!("building xdp-prog for the BPF target failed (its output is above as warnings); scripts/setup.sh installs nightly, rust-src and bpf-linker");
    }
    Ok(())
}
