//! A move-log segment of arbitrary bytes: header and slot decoding never
//! panic, and recovery of a partition holding it (the code that runs at
//! every start) never panics, never deletes a file, and hands on only
//! records whose CRC holds.
#![no_main]
use std::path::PathBuf;

use ironhoard_movelog::{decode_header, decode_record, decode_slot, recover_partition, segment_name, HEADER_LEN, RECORD_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() >= HEADER_LEN {
        let _ = decode_header(data[..HEADER_LEN].try_into().unwrap());
        for c in data[HEADER_LEN..].chunks_exact(RECORD_LEN) {
            let _ = decode_slot(c.try_into().unwrap());
        }
    }
    let dir = PathBuf::from(format!("/dev/shm/ih-fuzz-movelog-{}", std::process::id()));
    let pdir = dir.join("q0");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&pdir).unwrap();
    std::fs::write(pdir.join(segment_name(0)), data).unwrap();
    let mut seen = 0u64;
    let r = recover_partition(&pdir, 0, &mut |rec| {
        let mut b = [0u8; RECORD_LEN];
        ironhoard_movelog::encode_record(rec.offset, &ironhoard_movelog::Accepted { recv_unix_ns: rec.recv_unix_ns, queue: rec.queue, mv: rec.mv }, &mut b);
        assert!(decode_record(&b).is_some());
        seen += 1;
    });
    if let Ok(r) = r {
        assert_eq!(r.records, seen, "recovery counts what it hands on");
    }
    // nothing deleted: the file is there, or set aside under another name
    let left = std::fs::read_dir(&pdir).map(|d| d.count()).unwrap_or(0);
    assert!(left >= 1, "recovery deleted the segment");
    let _ = std::fs::remove_dir_all(&dir);
});
