//! `ironhoard-docgen OUT`: renders, from the very clap definitions the
//! binaries parse (`userspace/*/src/cli.rs`, compiled in here), what the
//! Debian package ships besides them:
//!
//! - `OUT/man/*.1`: `ironhoard(1)`, one page per subcommand
//!   (`ironhoard-run(1)`, …) and `ironhoard-pktgen(1)`, each with the
//!   sections an operator looks for (FILES, SIGNALS, EXIT STATUS, SEE ALSO)
//!   after the options clap knows;
//! - `OUT/completions/{bash,zsh,fish}/…`: completion scripts, named as each
//!   shell's vendor directory expects them.
//!
//! `make deb` runs it (scripts/build-deb.sh), so a page can never describe
//! an option the binary does not have. The date on the pages is
//! SOURCE_DATE_EPOCH's (dpkg sets it from debian/changelog), so two builds
//! of one version are byte-identical.

#[allow(dead_code)]
#[path = "../../../userspace/ironhoard/src/cli.rs"]
mod ironhoard_cli;
#[allow(dead_code)]
#[path = "../../../userspace/ironhoard-pktgen/src/cli.rs"]
mod pktgen_cli;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::CommandFactory;
use clap_complete::Shell;
use roff::{bold, italic, roman, Roff};

/// A section appended to a page after what clap renders.
struct Section {
    title: &'static str,
    /// (term, text): a tagged paragraph; an empty term is a plain paragraph.
    items: &'static [(&'static str, &'static str)],
}

const SEE_ALSO_TOP: &str = "ironhoard-run(1), ironhoard-check-config(1), ironhoard-keygen(1), \
ironhoard-player-key(1), ironhoard-tail(1), ironhoard-ship(1), ironhoard-reload(1), \
ironhoard-capture(1), ironhoard-stats(1), ironhoard-pktgen(1), systemctl(1), journalctl(1). \
The guides in /usr/share/doc/ironhoard: README.md, operations.md (deployment, restart and \
upgrade, capture), movelog.md, protocol.md, shipping.md.";

const FILES: Section = Section {
    title: "FILES",
    items: &[
        ("/etc/ironhoard/ironhoard.toml", "The configuration (an annotated example: /usr/share/doc/ironhoard/examples/ironhoard.example.toml). Relative paths in it are resolved against its directory."),
        ("/etc/ironhoard/secret*.hex", "Master secrets, one per key_id ([moves] secrets), 64 hex characters, mode 0640 root:ironhoard."),
        ("/var/lib/ironhoard/moves", "The move log ([log] dir): one partition per queue. Kept when the package is removed or purged (see README.Debian)."),
        ("/var/lib/ironhoard/ship.checkpoint", "Where the shipper resumes ([ship] checkpoint)."),
        ("/run/ironhoard/stats.sock", "The appliance's stats socket ([stats] socket): stats, reload, capture."),
        ("/run/ironhoard-ship/ship.sock", "The shipper's stats socket ([ship] stats_socket)."),
        ("/lib/systemd/system/ironhoard.service, ironhoard-ship.service", "The units. Tune a host with a drop-in (systemctl edit ironhoard)."),
    ],
};

/// The pages' extra sections, by page name.
fn extra(page: &str) -> Vec<Section> {
    let see = |t: &'static str| Section { title: "SEE ALSO", items: Box::leak(Box::new([("", t)])) };
    match page {
        "ironhoard" => vec![
            Section {
                title: "EXIT STATUS",
                items: &[
                    ("0", "Success."),
                    ("1", "An error: the message on standard error names the file, interface or value at fault."),
                    ("2, 3, 4", "Only where a subcommand's page says so (ship --ensure-stream, reload)."),
                ],
            },
            FILES,
            see(SEE_ALSO_TOP),
        ],
        "ironhoard-run" => vec![
            Section {
                title: "SIGNALS",
                items: &[
                    ("SIGTERM, SIGINT", "Hand over or stop without losing a move: the XDP program sends the moves to the bridge (UDP sockets on the move port), the pollers drain, the move log is synced, and the process exits 0. Under systemd the XDP link and the bridge stay in the unit's fd store, so the process started by systemctl restart (or a package upgrade) serves what queued there. systemctl stop empties the store and the program is detached."),
                    ("SIGHUP", "Re-read the configuration, as ironhoard reload does: secrets, board and limits change without a restart."),
                ],
            },
            Section {
                title: "ENVIRONMENT",
                items: &[
                    ("RUST_LOG", "Log level (error, warn, info, debug, trace); default info. The log goes to standard error (the journal under systemd)."),
                    ("LISTEN_FDS, LISTEN_FDNAMES, NOTIFY_SOCKET", "Set by systemd: the fd store the process inherits the XDP link and the bridge from, and where it reports READY once its pollers serve."),
                ],
            },
            Section {
                title: "EXIT STATUS",
                items: &[
                    ("0", "Stopped by a signal, or handed over to a successor, with the move log synced."),
                    ("1", "Refused to start or failed: the message names the file, interface or value at fault. Nothing stays attached to the interface."),
                ],
            },
            FILES,
            see("ironhoard(1), ironhoard-check-config(1), ironhoard-reload(1), ironhoard-stats(1), ironhoard-capture(1); /usr/share/doc/ironhoard/operations.md."),
        ],
        "ironhoard-check-config" => vec![
            Section { title: "EXIT STATUS", items: &[("0", "The configuration is valid (and, with --on-host, fits this host)."), ("1", "It is not: the message names the key and the value at fault.")] },
            see("ironhoard(1), ironhoard-run(1), ironhoard-reload(1)."),
        ],
        "ironhoard-reload" => vec![
            Section {
                title: "EXIT STATUS",
                items: &[
                    ("0", "The new configuration is applied."),
                    ("1", "It is refused; the old one keeps serving."),
                    ("3", "What changed needs a restart (systemctl restart ironhoard hands over without losing a move); the old configuration keeps serving."),
                    ("4", "No appliance answers on the socket."),
                ],
            },
            see("ironhoard(1), ironhoard-run(1), ironhoard-check-config(1), systemctl(1)."),
        ],
        "ironhoard-tail" => vec![
            Section { title: "EXIT STATUS", items: &[("0", "Every record read was whole."), ("1", "Damage was found (reported on standard error), or an error.")] },
            see("ironhoard(1), ironhoard-ship(1); /usr/share/doc/ironhoard/movelog.md."),
        ],
        "ironhoard-ship" => vec![
            Section {
                title: "SIGNALS",
                items: &[("SIGTERM, SIGINT", "Stop publishing, wait for the outstanding acknowledgements (at most one ack timeout), write the checkpoint, exit 0. What is published again after a restart is absorbed by the stream's duplicate window.")],
            },
            Section {
                title: "EXIT STATUS",
                items: &[("0", "Stopped by a signal; with --ensure-stream, the stream exists as configured."), ("1", "An error."), ("2", "With --ensure-stream: the stream exists but differs from the configuration (what differs is printed).")],
            },
            see("ironhoard(1), ironhoard-tail(1); /usr/share/doc/ironhoard/shipping.md."),
        ],
        "ironhoard-pktgen" => vec![
            Section {
                title: "EXAMPLES",
                items: &[
                    ("", "Send 10 000 moves/s for 5 s from 100 players to an appliance and write the report:"),
                    ("", "ironhoard-pktgen --target 10.200.0.1:7777 --secret-file secret0.hex --rate 10000 --duration 5 --report r.json"),
                    ("", "Replay a capture of ironhoard-capture(1) at its original timing:"),
                    ("", "ironhoard-pktgen --target 10.200.0.1:7777 --secret-file secret0.hex --replay moves.pcap --report r.json"),
                ],
            },
            see("ironhoard(1), ironhoard-capture(1); /usr/share/doc/ironhoard/protocol.md."),
        ],
        _ => vec![see("ironhoard(1), ironhoard-run(1), ironhoard-stats(1).")],
    }
}

fn render(cmd: clap::Command, date: &str, version: &str, out: &Path, pages: &mut Vec<PathBuf>) -> Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned() {
        render(sub, date, version, out, pages)?;
    }
    let man = clap_mangen::Man::new(cmd.clone())
        .date(date)
        .source(format!("ironhoard {version}"))
        .manual("IronHoard manual");
    let name = man.get_filename();
    let page = name.trim_end_matches(".1").to_string();
    let path = out.join(&name);
    let mut buf = Vec::new();
    man.render_title(&mut buf)?;
    man.render_name_section(&mut buf)?;
    man.render_synopsis_section(&mut buf)?;
    man.render_description_section(&mut buf)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut buf)?;
    }
    if cmd.has_subcommands() {
        man.render_subcommands_section(&mut buf)?;
    }
    let mut roff = Roff::new();
    for s in extra(&page) {
        roff.control("SH", [s.title]);
        for (term, text) in s.items {
            if term.is_empty() {
                roff.control("PP", [] as [&str; 0]);
                roff.text([roman(*text)]);
            } else {
                roff.control("TP", [] as [&str; 0]);
                roff.text([bold(*term)]);
                roff.text([roman(*text)]);
            }
        }
    }
    roff.control("SH", ["VERSION"]);
    roff.text([roman(format!("{page} {version}; see "))], );
    roff.text([italic("/usr/share/doc/ironhoard/changelog.gz"), roman(".")]);
    roff.to_writer(&mut buf)?;
    fs::File::create(&path).and_then(|mut f| f.write_all(&buf)).with_context(|| format!("writing {}", path.display()))?;
    pages.push(path);
    Ok(())
}

fn main() -> Result<()> {
    let out = match std::env::args_os().nth(1) {
        Some(o) => PathBuf::from(o),
        None => bail!("usage: ironhoard-docgen OUT_DIR"),
    };
    let version = env!("CARGO_PKG_VERSION");
    let date = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(s) => {
            let secs: i64 = s.parse().with_context(|| format!("SOURCE_DATE_EPOCH={s}: not a number of seconds"))?;
            ymd(secs)
        }
        // a .TH line needs a date: an empty one shifts the fields after it
        Err(_) => ymd(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)),
    };
    let man_dir = out.join("man");
    fs::create_dir_all(&man_dir).with_context(|| format!("creating {}", man_dir.display()))?;
    let mut pages = Vec::new();
    let commands = [
        ("ironhoard", ironhoard_cli::Cli::command()),
        ("ironhoard-pktgen", pktgen_cli::Args::command()),
    ];
    for (_, cmd) in &commands {
        let mut cmd = cmd.clone().disable_help_subcommand(true);
        cmd.build();
        render(cmd, &date, version, &man_dir, &mut pages)?;
    }
    for (shell, dir, file) in [
        (Shell::Bash, "bash", "{}"),
        (Shell::Zsh, "zsh", "_{}"),
        (Shell::Fish, "fish", "{}.fish"),
    ] {
        let d = out.join("completions").join(dir);
        fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
        for (name, cmd) in &commands {
            let path = d.join(file.replace("{}", name));
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut cmd.clone(), *name, &mut buf);
            fs::write(&path, buf).with_context(|| format!("writing {}", path.display()))?;
        }
    }
    eprintln!("ironhoard-docgen: {} man pages and 3 shells' completions in {}", pages.len(), out.display());
    Ok(())
}

/// `YYYY-MM-DD` of a Unix time (UTC), for the pages' .TH line.
fn ymd(secs: i64) -> String {
    // days since 1970-01-01 to a civil date (Howard Hinnant's algorithm)
    let z = secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(ymd(0), "1970-01-01");
        assert_eq!(ymd(951_782_400), "2000-02-29");
        assert_eq!(ymd(1_796_256_000), "2026-12-03");
    }

    #[test]
    fn every_subcommand_has_its_page_and_the_pages_name_only_real_options() {
        let dir = std::env::temp_dir().join(format!("ih-docgen-{}", std::process::id()));
        let mut cmd = ironhoard_cli::Cli::command().disable_help_subcommand(true);
        cmd.build();
        let subs: Vec<String> = cmd.get_subcommands().map(|s| s.get_name().to_string()).collect();
        fs::create_dir_all(&dir).unwrap();
        let mut pages = Vec::new();
        render(cmd, "2026-12-03", "0", &dir, &mut pages).unwrap();
        for s in &subs {
            let p = dir.join(format!("ironhoard-{s}.1"));
            let text = fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            // roff escapes each '-' as "\\-"
            assert!(text.contains(&format!("ironhoard {}", s.replace('-', "\\-"))), "{} has no synopsis for `ironhoard {s}`", p.display());
        }
        let run = fs::read_to_string(dir.join("ironhoard-run.1")).unwrap();
        for want in ["\\-\\-config", "\\-\\-iface", "SIGNALS", "SIGHUP", "FILES"] {
            assert!(run.contains(want), "ironhoard-run.1 lacks {want}");
        }
        fs::remove_dir_all(&dir).unwrap();
    }
}
