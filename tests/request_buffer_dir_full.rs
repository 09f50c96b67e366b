//! A body `request_buffer_dir` cannot take (a full disk) is answered 500
//! and logged `RD`. A test binary of its own: the disk is made "full" for
//! the whole process, with a limit on the size of any file it writes.

mod support;

use inverso::config::LogFormat;
use std::time::Duration;
use support::*;

#[test]
fn a_body_the_disk_cannot_take_is_answered_500_and_logged_rd() {
    // Past 256 KiB, a write fails with EFBIG (rather than the signal
    // that would end the process) as a full disk's fails with ENOSPC.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let limit = libc::rlimit {
            rlim_cur: 256 * 1024,
            rlim_max: libc::RLIM_INFINITY,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
    }
    let a = Backend::echo("a");
    let dir = tempfile::tempdir().unwrap();
    let mut proxy = start_proxy(&[a.addr], |c| {
        c.request_buffer_dir = Some(dir.path().to_path_buf());
        c.max_body_size = 8 * 1024 * 1024;
        c.log_format = LogFormat::parse("$request_uri $status $termination").unwrap();
    });
    let mut client = proxy.connect();
    let response = client.post("/large", &pattern(1024 * 1024));
    assert_eq!(response.status, 500);
    assert!(
        client.is_closed(),
        "the rest of the body would be read as a request"
    );
    assert_eq!(a.requests(), 0);
    // A body that fits still goes.
    let small = pattern(100 * 1024);
    assert_eq!(proxy.connect().post("/small", &small).status, 200);
    assert!(a.seen()[0].body == small);
    assert!(proxy.shutdown(Duration::from_secs(5)));
    let lines = proxy.log_lines();
    assert!(lines.iter().any(|l| l == "/large 500 RD"), "{lines:?}");
    assert!(lines.iter().any(|l| l == "/small 200 --"), "{lines:?}");
}
