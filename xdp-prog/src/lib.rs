#![no_std]
// The program is the `xdp-prog` binary (src/main.rs), built for
// bpfel-unknown-none by the `ironhoard-loader` build script (aya-build).
