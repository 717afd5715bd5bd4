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

/// A reader that opened its fifo and stopped reading: drain gives up at its
/// bound and ends the copy, so its descriptors close (the reader then sees
/// the end of what was buffered) instead of staying with the shim for good.
#[tokio::test]
async fn drain_ends_a_copy_stuck_on_a_reader_that_stopped_reading() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("stdout");
    nix::unistd::mkfifo(&out, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let path = out.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(std::fs::File::open(path).unwrap()).unwrap());
    let pty = nix::pty::openpty(None, None).unwrap();
    let paths = StdioPaths { stdout: out.display().to_string(), ..Default::default() };
    let mut io = IoCopy::console(&paths, pty.master, "c", "ns").await.unwrap();
    let mut reader = rx.recv_timeout(std::time::Duration::from_secs(5)).expect("stdout fifo never opened");
    // More than the fifo and the pty hold together, so the copy blocks on the fifo.
    let mut slave = std::fs::File::from(pty.slave);
    std::thread::spawn(move || {
        let chunk = [b'x'; 4096];
        for _ in 0..64 {
            if slave.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    io.drain(std::time::Duration::from_millis(300)).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(2), "drain took {:?}", started.elapsed());
    // An aborted task is dropped on the runtime's next turn, as the shim's keeps turning.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut all = Vec::new();
        tx.send(reader.read_to_end(&mut all).map(|_| all.len())).unwrap();
    });
    let read = rx
        .recv_timeout(std::time::Duration::from_secs(5))
        .expect("the stuck copy still holds the fifo open after drain")
        .unwrap();
    assert!(read >= 4096, "the reader got {read} bytes");
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

/// An RTOS console's stdin: a writer that leaves is seen (clients false), a
/// new writer is seen again and what it writes arrives, as `ctr run -d` then
/// `ctr task attach` (or nerdctl's detach and attach) do with the fifo.
#[tokio::test]
async fn tracked_stdin_sees_writers_leave_and_come_back() {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    use tokio::io::AsyncReadExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stdin");
    nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let writer = || std::fs::OpenOptions::new().write(true).custom_flags(nix::libc::O_NONBLOCK).open(&path);
    let mut first = writer().unwrap_err_or_open_after_reader();
    let first_missing = first.is_none();
    let (mut sink_r, sink_w) = tokio::net::UnixStream::pair().unwrap();
    let (clients, mut seen) = watch::channel(true);
    let (_close, close_rx) = oneshot::channel();
    let copy = tokio::spawn(copy_stdin_tracking(path.display().to_string(), sink_w, close_rx, clients));
    // The copy has the fifo open once a non-blocking writer can open it.
    tokio::time::timeout(std::time::Duration::from_secs(5), seen.wait_for(|c| !c)).await.expect("no writer yet: clients false").unwrap();
    let mut buf = [0u8; 64];
    let bound = std::time::Duration::from_secs(5);

    assert!(first_missing);
    let w1 = first.get_or_insert_with(|| writer().unwrap());
    tokio::time::timeout(bound, seen.wait_for(|c| *c)).await.expect("the first writer was not seen").unwrap();
    w1.write_all(b"one").unwrap();
    let n = tokio::time::timeout(bound, sink_r.read(&mut buf)).await.unwrap().unwrap();
    assert_eq!(&buf[..n], b"one");
    drop(first.take());
    tokio::time::timeout(bound, seen.wait_for(|c| !c)).await.expect("the writer's leave was not seen").unwrap();

    let mut w2 = writer().unwrap();
    tokio::time::timeout(bound, seen.wait_for(|c| *c)).await.expect("the new writer was not seen").unwrap();
    w2.write_all(b"two").unwrap();
    let n = tokio::time::timeout(bound, sink_r.read(&mut buf)).await.expect("what the new writer wrote never arrived").unwrap();
    assert_eq!(&buf[..n], b"two");
    drop(w2);
    tokio::time::timeout(bound, seen.wait_for(|c| !c)).await.expect("the second leave was not seen").unwrap();
    copy.abort();
}

trait OpenAfterReader {
    fn unwrap_err_or_open_after_reader(self) -> Option<std::fs::File>;
}

/// A non-blocking writer cannot open a fifo before its reader (ENXIO).
impl OpenAfterReader for std::io::Result<std::fs::File> {
    fn unwrap_err_or_open_after_reader(self) -> Option<std::fs::File> {
        assert_eq!(self.unwrap_err().raw_os_error(), Some(nix::libc::ENXIO));
        None
    }
}
