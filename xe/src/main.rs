//! `xe`: the command line (a stub until its own issue lands).

fn main() {
    eprintln!("xe: not implemented yet; use the XenAPI over HTTPS (see README.md)");
    std::process::exit(2);
}
