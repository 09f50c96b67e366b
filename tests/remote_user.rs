//! The user name `Authorization: Basic` claims, in the access log over
//! real sockets, in each format: a request that names one, one that names
//! none, one whose name would break the line, and one refused before its
//! head was parsed (which has none, whatever it sent).

mod support;

use inverso::config::LogFormat;
use std::time::Duration;
use support::*;

/// `ann:secret`.
const ANN: (&str, &str) = ("Authorization", "Basic YW5uOnNlY3JldA==");
/// `a b"c\d` CR LF, password `pw`.
const HOSTILE: (&str, &str) = ("Authorization", "Basic YSBiImNcZA0KOnB3");

/// The log lines of the four requests, to a proxy logging as `format`.
fn logged_as(format: &str) -> Vec<String> {
    let backend = Backend::echo("a");
    let format = LogFormat::parse(format).unwrap();
    let mut proxy = start_proxy(&[backend.addr], |c| c.log_format = format);
    let mut client = proxy.connect();
    assert_eq!(client.get_with("/ann", &[ANN]).status, 200);
    assert_eq!(client.get("/nobody").status, 200);
    assert_eq!(client.get_with("/hostile", &[HOSTILE]).status, 200);
    // No Host: refused (400) before the head was parsed.
    client.send(b"GET /bad HTTP/1.1\r\nAuthorization: Basic YW5uOnNlY3JldA==\r\n\r\n");
    assert_eq!(client.response().status, 400);
    drop(client);
    assert!(proxy.shutdown(Duration::from_secs(5)));
    let lines = proxy.log_lines();
    assert_eq!(lines.len(), 4, "{lines:?}");
    lines
}

#[test]
fn the_combined_line_names_the_claimed_user() {
    let lines = logged_as("combined");
    let starts = [
        "127.0.0.1 - ann [",
        "127.0.0.1 - - [",
        r"127.0.0.1 - a\x20b\x22c\x5Cd\x0D\x0A [",
        "127.0.0.1 - - [",
    ];
    for (line, start) in lines.iter().zip(starts) {
        assert!(line.starts_with(start), "{line}");
    }
    for (line, request) in lines.iter().zip(["/ann", "/nobody", "/hostile", "/bad"]) {
        // Split on spaces as a combined parser does: the user is one field.
        let fields: Vec<&str> = line.split(' ').collect();
        assert!(fields[3].starts_with('['), "{line}");
        assert_eq!(fields[6], request, "{line}");
    }
}

#[test]
fn the_json_line_has_a_remote_user_member() {
    let lines = logged_as("json");
    let members = [
        r#","remote_user":"ann","#,
        r#","remote_user":null,"#,
        r#","remote_user":"a b\"c\\d\r\n","#,
        r#","remote_user":null,"#,
    ];
    for (line, member) in lines.iter().zip(members) {
        assert!(line.contains(member), "{line}");
        assert_eq!(line.matches("remote_user").count(), 1, "{line}");
    }
}

#[test]
fn a_template_writes_remote_user_as_nginx_s_combined_does() {
    let lines = logged_as("$remote_addr - $remote_user [$time_local] \"$request\" $status");
    let written: Vec<(&str, &str)> = lines
        .iter()
        .map(|line| {
            let rest = line.strip_prefix("127.0.0.1 - ").expect(line);
            let (user, rest) = rest.split_once(" [").expect(line);
            (user, rest.rsplit_once(' ').expect(line).1)
        })
        .collect();
    assert_eq!(
        written,
        [
            ("ann", "200"),
            ("-", "200"),
            (r"a\x20b\x22c\x5Cd\x0D\x0A", "200"),
            ("-", "400"),
        ]
    );
}
