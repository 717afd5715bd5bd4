//! IoCopy with real pipes, ptys and fifos.

use super::*;

#[test]
fn uri_kinds() {
    assert!(matches!(classify(""), Output::None));
    assert!(matches!(classify("/run/x/stdout"), Output::Fifo("/run/x/stdout")));
    assert!(matches!(classify("fifo:///run/x"), Output::Fifo("/run/x")));
    assert!(matches!(classify("file:///var/log/c.log"), Output::File("/var/log/c.log")));
    assert!(matches!(classify("binary:///usr/bin/logger?a=b"), Output::Binary("/usr/bin/logger?a=b")));
    assert_eq!(percent_decode("a%20b%2"), "a b%2");
}

/// containerd 2.x (pkg/cio) sets a stderr path for a terminal process but
/// creates no fifo there; a console must start all the same.
#[tokio::test]
async fn console_starts_without_the_stderr_fifo_a_terminal_client_never_made() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("stdout");
    nix::unistd::mkfifo(&out, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let pty = nix::pty::openpty(None, None).unwrap();
    let paths = StdioPaths {
        stdout: out.display().to_string(),
        stderr: dir.path().join("stderr").display().to_string(),
        ..Default::default()
    };
    let mut io = IoCopy::console(&paths, pty.master, "c", "ns").await.expect("console without a stderr fifo");
    drop(pty.slave);
    io.drain(std::time::Duration::from_secs(5)).await;
}

#[tokio::test]
async fn console_opens_a_separate_stderr_fifo_and_closes_it_with_the_output() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("stdout"), dir.path().join("stderr"));
    for p in [&out, &err] {
        nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    }
    // Like containerd's reader: a plain read-only open, which blocks until a writer appears.
    let (tx, rx) = std::sync::mpsc::channel();
    let path = err.clone();
    std::thread::spawn(move || tx.send(std::fs::File::open(path)).unwrap());
    let pty = nix::pty::openpty(None, None).unwrap();
    let paths = StdioPaths {
        stdout: out.display().to_string(),
        stderr: err.display().to_string(),
        ..Default::default()
    };
    let mut io = IoCopy::console(&paths, pty.master, "c", "ns").await.unwrap();
    let mut reader = rx
        .recv_timeout(std::time::Duration::from_secs(5))
        .expect("the stderr fifo was never opened for writing")
        .unwrap();
    // The console hangs up; nobody asks for a drain (containerd waits for
    // end of file on every stream before it deletes the task).
    drop(pty.slave);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut rest = Vec::new();
        tx.send(reader.read_to_end(&mut rest).map(|_| rest)).unwrap();
    });
    let mut got = None;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        if let Ok(r) = rx.try_recv() {
            got = Some(r);
            break;
        }
    }
    let rest = got.expect("stderr did not end when the console hung up").unwrap();
    assert!(rest.is_empty(), "stderr carried {rest:?}");
    io.drain(std::time::Duration::from_secs(5)).await;
}

/// nerdctl hands every detached container a `binary://` log, and ctr's
/// --log-uri a `file://`: a console's output must reach both, and its
/// end must still be noticed (an RTOS's exit waits for it).
#[tokio::test]
async fn console_output_reaches_a_file_and_a_logging_binary() {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("logs/console.log");
    let logged = dir.path().join("binary.log");
    let logger = dir.path().join("logger");
    std::fs::write(&logger, format!("#!/bin/sh\nexec 5>&-\necho \"$CONTAINER_NAMESPACE/$CONTAINER_ID $1\" > {0}\ncat <&3 >> {0}\n", logged.display())).unwrap();
    std::fs::set_permissions(&logger, std::fs::Permissions::from_mode(0o755)).unwrap();
    for (stdout, out) in [
        (format!("file://{}", file.display()), &file),
        (format!("binary://{}?opt=1", logger.display()), &logged),
    ] {
        let pty = nix::pty::openpty(None, None).unwrap();
        // openpty's fds are inherited by children; the logger must not keep the slave open
        nix::fcntl::fcntl(&pty.slave, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC)).unwrap();
        let paths = StdioPaths { stdout: stdout.clone(), stderr: stdout.clone(), terminal: true, ..Default::default() };
        let mut io = IoCopy::console(&paths, pty.master, "c1", "ns1").await.unwrap();
        let hangup = io.hangup();
        std::fs::File::from(pty.slave).write_all(b"hello console\n").unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), hangup.notified()).await.unwrap_or_else(|_| panic!("{stdout}: the console's end was not noticed"));
        io.drain(std::time::Duration::from_secs(5)).await;
        let mut text = String::new();
        for _ in 0..50 {
            text = std::fs::read_to_string(out).unwrap_or_default();
            if text.contains("hello console") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(text.contains("hello console"), "{stdout}: {text:?}");
    }
    assert!(std::fs::read_to_string(&logged).unwrap().starts_with("ns1/c1 opt"));
}
