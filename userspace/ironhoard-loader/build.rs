//! Builds `xdp-prog` for the BPF target (nightly + rust-src + bpf-linker,
//! installed by scripts/setup.sh) and leaves the object in OUT_DIR, where
//! src/lib.rs embeds it.
fn main() -> anyhow::Result<()> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../xdp-prog");
    println!("cargo:rerun-if-changed={root}/src");
    println!("cargo:rerun-if-changed={}/../ironhoard-common/src", env!("CARGO_MANIFEST_DIR"));
    aya_build::build_ebpf(
        [aya_build::Package { name: "xdp-prog", root_dir: root, ..Default::default() }],
        aya_build::Toolchain::default(),
    )
}
