//! The data dir against other local users: made the owner's only whatever the umask oxapi is
//! started with, and refused when others can read it (it holds the pool secret).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use oxapi_tests::{Host, HostOptions, Protocol, logged_in};

/// Every entry under `dir`, depth first, with its permission bits.
fn modes_under(dir: &Path) -> Vec<(PathBuf, u32)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("the data dir can be listed") {
        let path = entry.expect("an entry").path();
        let meta = std::fs::symlink_metadata(&path).expect("stat");
        found.push((path.clone(), meta.permissions().mode() & 0o7777));
        if meta.is_dir() {
            found.extend(modes_under(&path));
        }
    }
    found
}

/// Started under umask 022, oxapi makes its data dir 0700 and every file in it (the Raft
/// store, the dumps with the pool secret, identity.json, the TLS key) and its Unix socket
/// unreadable by group and others.
#[tokio::test]
async fn a_data_dir_made_under_umask_022_is_the_owners_only() {
    let mut host = Host::start_with(HostOptions {
        root_password: Some("secret-pw".to_owned()),
        umask: Some(0o022),
        ..HostOptions::default()
    });
    // A session in the Raft log, then a clean stop: a final dump joins the first one.
    let client = logged_in(&host, Protocol::JsonRpc).await;
    drop(client);
    assert_eq!(host.stop(), Some(0), "{}", host.log());

    let data_dir = host.data_dir();
    let dir_mode = std::fs::metadata(&data_dir)
        .expect("stat")
        .permissions()
        .mode()
        & 0o7777;
    assert_eq!(dir_mode, 0o700, "the data dir's mode");
    let entries = modes_under(&data_dir);
    let names: Vec<String> = entries
        .iter()
        .filter_map(|(path, _)| Some(path.file_name()?.to_string_lossy().into_owned()))
        .collect();
    for expected in ["raft.redb", "identity.json", "key.pem", "dumps"] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }
    assert!(names.iter().any(|n| n.ends_with(".dump")), "{names:?}");
    let loose: Vec<_> = entries
        .iter()
        .filter(|(_, mode)| mode & 0o077 != 0)
        .collect();
    assert!(loose.is_empty(), "readable by others: {loose:?}");

    host.start_again();
    let socket_mode = std::fs::metadata(host.unix_socket())
        .expect("the unix socket")
        .permissions()
        .mode();
    assert_eq!(
        socket_mode & 0o077,
        0,
        "the unix socket's mode {socket_mode:o}"
    );
}

/// A data dir that others can enter is refused at start, with an error naming it and its
/// mode and a non-zero exit status; made 0700 again, the host starts with its pool intact.
#[tokio::test]
async fn a_start_on_a_loose_data_dir_is_refused() {
    let mut host = Host::start();
    let data_dir = host.data_dir();
    assert_eq!(host.stop(), Some(0), "{}", host.log());
    std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");

    let (code, log) = host.start_refused();
    assert!(code.is_some_and(|code| code != 0), "exit code {code:?}");
    assert!(
        log.contains(&data_dir.display().to_string()) && log.contains("0755"),
        "the log names the data dir and its mode:\n{log}"
    );

    std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    host.start_again();
    let client = logged_in(&host, Protocol::JsonRpc).await;
    assert!(
        !client
            .ok("VM.get_all", vec![])
            .await
            .as_array()
            .expect("refs")
            .is_empty()
    );
}
