//! containerd's `file://` and `binary://` stdio (ctr `--log-uri`) through micrun.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::{env, unique_id, wait_until};

#[test]
fn file_log_uri_receives_stdout_and_stderr() {
    let env = env();
    let id = unique_id("logfile");
    let log = env.state.join(format!("{id}.log"));
    let uri = format!("file://{}", log.display());
    let r = env.run_rm(&id, &["--log-uri", &uri], &["sh", "-c", "echo to-out; echo to-err >&2; exit 2"]);
    assert_eq!(r.code, 2, "exit code must come through: {}{}", r.stdout, r.stderr);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(text.contains("to-out") && text.contains("to-err"), "log file {} holds {text:?}", log.display());
    assert!(!r.stdout.contains("to-out"), "output went to the file, not to ctr: {:?}", r.stdout);
}

/// A logging driver in the containerd style: stdout on fd 3, stderr on fd 4, and
/// it closes fd 5 once ready. This one copies both streams to files named by its
/// arguments (`binary:///path?out=FILE` arrives as `out FILE`).
const DRIVER: &str = r#"#!/bin/sh
out="$2"
echo "$CONTAINER_NAMESPACE/$CONTAINER_ID" > "$out.env"
# Ready before the copiers start, so they do not inherit (and hold) fd 5.
exec 5>&-
cat <&3 > "$out.stdout" &
cat <&4 > "$out.stderr" &
wait
"#;

#[test]
fn binary_log_uri_runs_the_driver_with_both_streams() {
    let env = env();
    let id = unique_id("logbin");
    let driver = env.state.join("log-driver.sh");
    std::fs::write(&driver, DRIVER).unwrap();
    std::fs::set_permissions(&driver, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = env.state.join(format!("{id}-driver"));
    let uri = format!("binary://{}?out={}", driver.display(), out.display());
    let r = env.run_rm(&id, &["--log-uri", &uri], &["sh", "-c", "echo via-driver; echo err-driver >&2"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let read = |ext: &str| std::fs::read_to_string(out.with_extension(ext)).unwrap_or_default();
    // The driver copies asynchronously; it has the streams once they close.
    assert!(
        wait_until(Duration::from_secs(5), || read("stdout").contains("via-driver") && read("stderr").contains("err-driver")),
        "driver got stdout {:?} stderr {:?}",
        read("stdout"),
        read("stderr")
    );
    assert_eq!(read("env").trim(), format!("{}/{id}", env.namespace), "driver environment");
}
